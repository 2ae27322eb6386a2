/**
 * Memory-mapped safetensors loading: every tensor equals the positionally read one byte for byte
 * (the fixtures' files, files writeSafetensors wrote in each dtype, files whose header length
 * leaves the data misaligned), aligned tensors are views of one mapping while misaligned ones are
 * copies, writes into mapped weights never reach the file, and the addon's mapFile reports bad
 * input and system errors by path.
 */
import assert from "node:assert/strict";
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { mappingUnavailable, planMappings } from "../src/io/mapped-file.js";
import * as tv from "../src/index.js";

const FIXTURES = fileURLToPath(new URL("../../../shared/fixtures/", import.meta.url));
const unavailable = mappingUnavailable();
const needsMapping = { skip: unavailable ?? false };

const scratch = await mkdtemp(join(tmpdir(), "tsvene-io-mapped-"));
after(() => rm(scratch, { recursive: true, force: true }));

type Loaded = tv.Tensor | tv.IntTensor;

/** The bytes a tensor holds: 16-bit storage as stored, else its float32 or int32 values. */
function storage(t: Loaded): Float32Array | Int32Array | Uint16Array {
  return t instanceof tv.Tensor ? (t.half?.bits ?? t.data) : t.data;
}

function storageBytes(t: Loaded): Uint8Array {
  const s = storage(t);
  return new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
}

/** Mapped and read loads of `path` agree: names in order, classes, shapes, metadata, every byte. */
async function assertMappedEqualsRead(
  path: string,
  options: { dtype?: tv.WeightDtype; names?: string[] } = {},
): Promise<Map<string, Loaded>> {
  const mapped = await tv.readSafetensors(path, { ...options, io: "mmap" });
  const read = await tv.readSafetensors(path, { ...options, io: "read" });
  assert.deepEqual(mapped.metadata, read.metadata);
  assert.deepEqual([...mapped.tensors.keys()], [...read.tensors.keys()]);
  for (const [name, expected] of read.tensors) {
    const actual = mapped.tensors.get(name)!;
    assert.equal(actual.constructor, expected.constructor, `${path} ${name}: class`);
    assert.deepEqual(actual.shape, expected.shape, `${path} ${name}: shape`);
    assert.equal(storage(actual).constructor, storage(expected).constructor, `${path} ${name}: storage type`);
    assert.deepEqual(storageBytes(actual), storageBytes(expected), `${path} ${name}: bytes`);
  }
  return mapped.tensors;
}

/** `file` (whole, as serializeSafetensors writes it) with `extra` more spaces after the header. */
function withHeaderPadding(file: Uint8Array, extra: number): Uint8Array {
  const headerLength = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const out = new Uint8Array(file.byteLength + extra);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength + extra), true);
  out.set(file.subarray(8, 8 + headerLength), 8);
  out.fill(0x20, 8 + headerLength, 8 + headerLength + extra);
  out.set(file.subarray(8 + headerLength), 8 + headerLength + extra);
  return out;
}

/** Float tensors whose values survive F16 and BF16 unchanged, an int64 one, and an empty one. */
function sampleTensors(): Map<string, Loaded> {
  const ramp = (n: number, scale: number) => Float32Array.from({ length: n }, (_, i) => (i - n / 2) * scale);
  return new Map<string, Loaded>([
    ["embed.weight", new tv.Tensor(ramp(96, 0.25), [12, 8])],
    ["h.0.bias", new tv.Tensor(ramp(7, 0.5), [7])],
    ["h.0.weight", new tv.Tensor(ramp(40, 0.125), [5, 8])],
    ["empty", new tv.Tensor(new Float32Array(0), [0, 3])],
    ["positions", new tv.IntTensor([3, -1, 2147483647, -2147483648, 0], [5])],
  ]);
}

async function fileOf(name: string, bytes: Uint8Array): Promise<string> {
  const path = join(scratch, name);
  await writeFile(path, bytes);
  return path;
}

describe("mapped loading equals positional loading", needsMapping, () => {
  it("on every safetensors file of the shared fixtures", async () => {
    const files = (await readdir(FIXTURES, { recursive: true }))
      .filter((file) => file.endsWith(".safetensors"))
      .map((file) => join(FIXTURES, file));
    assert.ok(files.length >= 10, `expected the fixtures' safetensors files, found ${files.length}`);
    for (const path of files) await assertMappedEqualsRead(path);
  });

  for (const dtype of ["F32", "F16", "BF16"] as const) {
    it(`on files writeSafetensors wrote as ${dtype}, with I64 and empty tensors, in both dtypes`, async () => {
      const path = join(scratch, `written-${dtype}.safetensors`);
      await tv.writeSafetensors(path, sampleTensors(), { dtype, metadata: { format: "pt" } });
      for (const target of ["float32", "auto"] as const) await assertMappedEqualsRead(path, { dtype: target });
      await assertMappedEqualsRead(path, { names: ["h.0.weight", "positions"] });
    });
  }

  for (const extra of [1, 2, 3, 4, 5]) {
    it(`when a header padded by ${extra} byte(s) leaves tensors misaligned`, async () => {
      for (const dtype of ["F32", "BF16"] as const) {
        const bytes = withHeaderPadding(tv.serializeSafetensors(sampleTensors(), { dtype }), extra);
        const path = await fileOf(`misaligned-${extra}-${dtype}.safetensors`, bytes);
        for (const target of ["float32", "auto"] as const) await assertMappedEqualsRead(path, { dtype: target });
      }
    });
  }
});

describe("mapped tensors", needsMapping, () => {
  it("are views of one mapping where aligned, and copies of their own where not", async () => {
    // The data starts 4 past a multiple of 8: the I64 tensor (first, as the widest) is off its
    // 8-alignment, and the F32 ones after its 40 bytes are 4-aligned.
    const bytes = withHeaderPadding(tv.serializeSafetensors(sampleTensors()), 4);
    const path = await fileOf("half-aligned.safetensors", bytes);
    const { tensors } = await tv.readSafetensors(path, { io: "mmap" });
    const weight = tensors.get("embed.weight") as tv.Tensor;
    const bias = tensors.get("h.0.bias") as tv.Tensor;
    const positions = tensors.get("positions") as tv.IntTensor;
    assert.equal(weight.data.buffer, bias.data.buffer, "the F32 tensors share one mapping");
    assert.equal(weight.data.byteOffset % 8, 4, "the mapping keeps the file's alignment");
    assert.notEqual(positions.data.buffer, weight.data.buffer, "I64 off its alignment is decoded from a copy");

    const read = await tv.readSafetensors(path, { io: "read" });
    const readWeight = read.tensors.get("embed.weight") as tv.Tensor;
    assert.notEqual(readWeight.data.buffer, (read.tensors.get("h.0.bias") as tv.Tensor).data.buffer);
  });

  it("keep BF16 storage on the mapping when loaded as stored", async () => {
    const path = join(scratch, "bf16-views.safetensors");
    await tv.writeSafetensors(path, sampleTensors(), { dtype: "BF16" });
    const { tensors } = await tv.readSafetensors(path, { io: "mmap", dtype: "auto" });
    const weight = tensors.get("embed.weight") as tv.Tensor;
    const bias = tensors.get("h.0.bias") as tv.Tensor;
    assert.equal(weight.dtype, "bfloat16");
    assert.equal(weight.half?.bits.buffer, bias.half?.bits.buffer, "both are views of one mapping");
  });

  it("leave tensors that are converted (BF16 loaded as float32) off the mapping: the file is read", async (t) => {
    if (process.platform !== "linux") return t.skip("reads /proc/self/maps");
    const path = join(scratch, "bf16-converted.safetensors");
    await tv.writeSafetensors(path, sampleTensors(), { dtype: "BF16" });
    const mappedNow = async () => (await readFile("/proc/self/maps", "utf8")).includes(path);
    const converted = await tv.readSafetensors(path, { io: "mmap", dtype: "float32" });
    assert.equal(await mappedNow(), false, "no mapping of the file while the converted tensors live");
    const kept = await tv.readSafetensors(path, { io: "mmap", dtype: "auto" });
    assert.equal(await mappedNow(), true, "BF16 kept as stored is mapped");
    const read = await tv.readSafetensors(path, { io: "read", dtype: "float32" });
    for (const [name, tensor] of read.tensors) {
      assert.deepEqual(storageBytes(converted.tensors.get(name)!), storageBytes(tensor), name);
    }
    assert.ok(kept.tensors.size > 0);
  });

  it("map separate runs of a selection, and only those", async () => {
    const path = join(scratch, "runs.safetensors");
    await tv.writeSafetensors(path, sampleTensors());
    // Data order: positions (I64, the widest), then the F32 ones by name: embed.weight, empty,
    // h.0.bias, h.0.weight.
    const { tensors } = await tv.readSafetensors(path, { io: "mmap", names: ["embed.weight", "h.0.weight"] });
    const first = tensors.get("embed.weight") as tv.Tensor;
    const second = tensors.get("h.0.weight") as tv.Tensor;
    assert.notEqual(first.data.buffer, second.data.buffer, "h.0.bias lies between them, unmapped");
    // Each mapping spans its run alone, from the 8-aligned offset at or before it.
    assert.ok(first.data.buffer.byteLength < first.data.byteLength + 8);
    assert.ok(second.data.buffer.byteLength < second.data.byteLength + 8);
  });

  it("take writes in this process only: the file and later loads keep the original bytes", async () => {
    const path = join(scratch, "copy-on-write.safetensors");
    await tv.writeSafetensors(path, sampleTensors());
    const before = await readFile(path);
    const { tensors } = await tv.readSafetensors(path, { io: "mmap" });
    const weight = tensors.get("embed.weight") as tv.Tensor;
    const original = weight.data.slice();
    weight.data.fill(1234.5);
    assert.equal(weight.data[95], 1234.5, "the write is visible through the tensor");
    assert.deepEqual(await readFile(path), before, "the file is unchanged");
    const again = (await tv.readSafetensors(path, { io: "mmap" })).tensors.get("embed.weight") as tv.Tensor;
    assert.deepEqual(again.data, original);
    assert.deepEqual((tensors.get("h.0.bias") as tv.Tensor).data, (sampleTensors().get("h.0.bias") as tv.Tensor).data);
  });
});

describe("files over 4 GiB", needsMapping, () => {
  it("are mapped in pieces of at most 4 GiB, each tensor inside one", async (t) => {
    // Two 2 GiB F32 tensors fill one 4 GiB mapping; a third needs a second. The file is sparse:
    // only the marked elements take disk blocks, and mapping touches none but those.
    const n = 2 ** 29;
    const json = JSON.stringify({
      a: { dtype: "F32", shape: [n], data_offsets: [0, 4 * n] },
      b: { dtype: "F32", shape: [n], data_offsets: [4 * n, 8 * n] },
      c: { dtype: "F32", shape: [2], data_offsets: [8 * n, 8 * n + 8] },
    });
    const header = new TextEncoder().encode(json.padEnd(Math.ceil(json.length / 8) * 8));
    const dataStart = 8 + header.byteLength;
    const path = join(scratch, "sparse-6g.safetensors");
    const file = await open(path, "w");
    try {
      const length = new Uint8Array(8);
      new DataView(length.buffer).setBigUint64(0, BigInt(header.byteLength), true);
      await file.write(length, 0, 8, 0);
      await file.write(header, 0, header.byteLength, 8);
      await file.truncate(dataStart + 8 * n + 8);
      const marks: [number, number][] = [
        [0, 1],
        [4 * n - 4, 2],
        [4 * n, 3],
        [8 * n - 4, 4],
        [8 * n, 5],
        [8 * n + 4, 6],
      ];
      for (const [at, value] of marks) {
        const bytes = new Uint8Array(Float32Array.of(value).buffer);
        await file.write(bytes, 0, 4, dataStart + at);
      }
    } finally {
      await file.close();
    }
    try {
      if ((await stat(path)).blocks * 512 > 2 ** 24) return t.skip("this file system does not keep files sparse");
      const { tensors } = await tv.readSafetensors(path, { io: "mmap" });
      const [a, b, c] = ["a", "b", "c"].map((name) => (tensors.get(name) as tv.Tensor).data);
      assert.deepEqual([a[0], a[n - 1], b[0], b[n - 1], c[0], c[1]], [1, 2, 3, 4, 5, 6]);
      assert.equal(a.buffer, b.buffer, "a and b share the first mapping");
      assert.equal(a.buffer.byteLength, 2 ** 32);
      assert.notEqual(c.buffer, b.buffer, "c is in a second mapping");
    } finally {
      await rm(path);
    }
  });
});

describe("choosing how to read", () => {
  it("refuses an unknown io, an unknown setting and an unknown option key", async () => {
    const path = join(scratch, "choice.safetensors");
    await tv.writeSafetensors(path, sampleTensors());
    await assert.rejects(
      tv.readSafetensors(path, { io: "mapped" as never }),
      /readSafetensors: io must be "auto", "mmap", "read", got "mapped"/,
    );
    await assert.rejects(tv.readSafetensors(path, { nmes: ["x"] } as never), /unknown option "nmes".*"names"/);
    const saved = process.env.TSVENE_SAFETENSORS_IO;
    process.env.TSVENE_SAFETENSORS_IO = "always";
    try {
      await assert.rejects(
        tv.readSafetensors(path),
        /the TSVENE_SAFETENSORS_IO setting must be "auto", "mmap", "read", got "always"/,
      );
      process.env.TSVENE_SAFETENSORS_IO = "read";
      const { tensors } = await tv.readSafetensors(path);
      const weight = tensors.get("embed.weight") as tv.Tensor;
      assert.notEqual(weight.data.buffer, (tensors.get("h.0.bias") as tv.Tensor).data.buffer, "read, not mapped");
    } finally {
      if (saved === undefined) delete process.env.TSVENE_SAFETENSORS_IO;
      else process.env.TSVENE_SAFETENSORS_IO = saved;
    }
  });

  it("reads where the platform has no addon, and says why when mapping is demanded", async () => {
    const path = join(scratch, "portable.safetensors");
    await tv.writeSafetensors(path, sampleTensors());
    tv.setPlatform(tv.portablePlatform);
    try {
      await assert.rejects(
        tv.readSafetensors(path, { io: "mmap" }),
        /io "mmap" needs the native addon's mapFile, which is unavailable: this platform has no native addon/,
      );
      const { tensors } = await tv.readSafetensors(path);
      assert.deepEqual(
        (tensors.get("positions") as tv.IntTensor).data,
        Int32Array.of(3, -1, 2147483647, -2147483648, 0),
      );
    } finally {
      tv.setPlatform(null);
    }
  });
});

describe("planMappings", () => {
  it("maps runs of adjacent ranges, from an 8-aligned start, split at the size limit", () => {
    const plan = planMappings(
      [
        [13, 20],
        [20, 20],
        [20, 40],
        [40, 60],
        [64, 70],
        [70, 200],
        [200, 203],
      ],
      50,
    );
    assert.deepEqual(plan, [
      { start: 8, end: 40, members: [0, 2] },
      { start: 40, end: 60, members: [3] },
      { start: 64, end: 70, members: [4] },
      { start: 200, end: 203, members: [6] },
    ]);
  });
});

describe("the addon's mapFile", needsMapping, () => {
  const mapFile = tv.platform().loadNativeAddon().exports.mapFile as (
    fd: number,
    offset: number,
    length: number,
    path: string,
  ) => ArrayBuffer;

  it("maps a range of an open file, and an empty one of an empty file", async () => {
    const path = await fileOf("ten.bin", Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
    const empty = await fileOf("empty.bin", new Uint8Array(0));
    const file = await open(path, "r");
    const emptyFile = await open(empty, "r");
    try {
      assert.deepEqual(new Uint8Array(mapFile(file.fd, 3, 5, path)), Uint8Array.of(4, 5, 6, 7, 8));
      assert.equal(mapFile(file.fd, 10, 0, path).byteLength, 0);
      assert.equal(mapFile(emptyFile.fd, 0, 0, empty).byteLength, 0);
    } finally {
      await file.close();
      await emptyFile.close();
    }
  });

  it("names the path and the reason when it cannot map", async () => {
    const path = await fileOf("short.bin", new Uint8Array(16));
    const file = await open(path, "r");
    try {
      assert.throws(() => mapFile(file.fd, 8, 9, path), {
        name: "RangeError",
        message: `mapFile: bytes [8, 17) run past the end of the 16-byte file ${path}`,
      });
      assert.throws(() => mapFile(file.fd, 0.5, 1, path), /offset must be an integer in \[0, 2\^53\), got 0\.5/);
      assert.throws(() => mapFile(file.fd, 0, 2 ** 32 + 1, path), /exceeds the 4294967296 bytes one mapping may span/);
    } finally {
      await file.close();
    }
    // Far above any open descriptor (closing one instead could see its number reused at once).
    assert.throws(() => mapFile(1_000_000, 0, 1, path), {
      message: `mapFile: cannot inspect ${path}: Bad file descriptor`,
    });
    const writeOnly = await open(path, "a");
    try {
      assert.throws(() => mapFile(writeOnly.fd, 0, 1, path), {
        message: `mapFile: cannot map ${path}: Permission denied`,
      });
    } finally {
      await writeOnly.close();
    }
  });
});

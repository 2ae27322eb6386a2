/**
 * Safetensors: dtype conversions against hand-computed bit patterns, round trips, pyvene's fixture
 * files, header validation.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import * as tv from "../src/index.js";

const FIXTURES = fileURLToPath(new URL("../../../shared/fixtures/pyvene-0.1.8/", import.meta.url));
const MODELS = ["gpt2_tiny", "llama_tiny_gqa", "gpt_neox_tiny", "mlp_tiny"];

const scratch = await mkdtemp(join(tmpdir(), "tsvene-io-safetensors-"));
after(() => rm(scratch, { recursive: true, force: true }));

/**
 * A safetensors file from a literal header and data bytes, for dtypes tsvene reads but does not
 * write, and for broken files.
 */
function rawFile(header: unknown, data: ArrayLike<number> | ArrayBufferView = new Uint8Array()): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const bytes = ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : Uint8Array.from(data);
  const out = new Uint8Array(8 + json.length + bytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes, 8 + json.length);
  return out;
}

/** The data section of a file that `serializeSafetensors` wrote. */
function dataOf(file: Uint8Array): Uint8Array {
  const headerLength = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  return file.subarray(8 + headerLength);
}

function halfBits(values: number[]): number[] {
  const data = dataOf(tv.serializeSafetensors({ x: tv.tensor(values) }, { dtype: "F16" }));
  return [...new Uint16Array(data.slice().buffer)];
}

function bfloat16Bits(values: number[]): number[] {
  const data = dataOf(tv.serializeSafetensors({ x: tv.tensor(values) }, { dtype: "BF16" }));
  return [...new Uint16Array(data.slice().buffer)];
}

function load(file: Uint8Array, name = "x"): tv.Tensor | tv.IntTensor {
  return tv.parseSafetensors(file).tensors.get(name)!;
}

function floatsOf(t: tv.Tensor | tv.IntTensor): number[] {
  assert.ok(t instanceof tv.Tensor, `expected a float Tensor, got ${t.constructor.name}`);
  return [...t.data];
}

function intsOf(t: tv.Tensor | tv.IntTensor): number[] {
  assert.ok(t instanceof tv.IntTensor, `expected an IntTensor, got ${t.constructor.name}`);
  return [...t.data];
}

describe("F16 and BF16 conversion", () => {
  it("writes F16 with round-to-nearest-even, matching hand-computed bit patterns", () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [0, 0x0000],
      [-0, 0x8000],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00],
      [1e5, 0x7c00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001],
      [1023 * 2 ** -24, 0x03ff],
      [2 ** -14, 0x0400],
      [2 ** -25, 0x0000],
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002],
      [2 ** -30, 0x0000],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [1 + 2 ** -11 + 2 ** -20, 0x3c01],
      [2 ** -149, 0x0000],
      [-(2 ** -24), 0x8001],
    ];
    assert.deepEqual(
      halfBits(cases.map(([v]) => v)).map(hex),
      cases.map(([, bits]) => hex(bits)),
    );
    assert.equal(halfBits([NaN])[0] & 0x7fff, 0x7e00);
  });

  it("writes BF16 with round-to-nearest-even, matching hand-computed bit patterns", () => {
    const cases: [number, number][] = [
      [1, 0x3f80],
      [-1, 0xbf80],
      [3, 0x4040],
      [Math.PI, 0x4049],
      [0.1, 0x3dcd],
      [1 + 2 ** -8, 0x3f80],
      [1 + 3 * 2 ** -8, 0x3f82],
      [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [3.4028234663852886e38, 0x7f80],
      [2 ** -133, 0x0001],
      [2 ** -149, 0x0000],
      [-0, 0x8000],
    ];
    assert.deepEqual(
      bfloat16Bits(cases.map(([v]) => v)).map(hex),
      cases.map(([, bits]) => hex(bits)),
    );
    assert.equal(bfloat16Bits([NaN])[0] & 0x7fff, 0x7fc0);
  });

  it("reads F16 exactly: subnormals, the largest finite value, infinities, NaN, signed zero", () => {
    const bits = [0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000, 0x3c00, 0x3555];
    const file = rawFile(
      { x: { dtype: "F16", shape: [bits.length], data_offsets: [0, 2 * bits.length] } },
      new Uint16Array(bits),
    );
    const values = floatsOf(load(file));
    assert.deepEqual(values, [
      2 ** -24,
      1023 * 2 ** -24,
      2 ** -14,
      65504,
      Infinity,
      -Infinity,
      NaN,
      -0,
      1,
      0.333251953125,
    ]);
    assert.ok(Object.is(values[7], -0));
  });

  it("reads BF16 exactly, including F32 subnormals", () => {
    const bits = [0x3f80, 0x0001, 0x7f80, 0xff80, 0x7fc0, 0x4049, 0x8000];
    const file = rawFile(
      { x: { dtype: "BF16", shape: [bits.length], data_offsets: [0, 2 * bits.length] } },
      new Uint16Array(bits),
    );
    assert.deepEqual(floatsOf(load(file)), [1, 2 ** -133, Infinity, -Infinity, NaN, 3.140625, -0]);
  });

  it("maps every F16 and BF16 bit pattern back to itself through a write", () => {
    for (const dtype of ["F16", "BF16"] as const) {
      const every = new Uint16Array(65536).map((_, i) => i);
      const read = load(rawFile({ x: { dtype, shape: [65536], data_offsets: [0, 131072] } }, every)) as tv.Tensor;
      const rewritten = new Uint16Array(dataOf(tv.serializeSafetensors({ x: read }, { dtype })).slice().buffer);
      const [exponentBits, quietBit] = dtype === "F16" ? [0x7c00, 0x0200] : [0x7f80, 0x0040];
      for (let bits = 0; bits < 65536; bits++) {
        const out = rewritten[bits];
        if (Number.isNaN(read.data[bits])) {
          assert.ok(
            (out & exponentBits) === exponentBits && (out & quietBit) !== 0,
            `${dtype} NaN ${hex(bits)} became ${hex(out)}, not a quiet NaN`,
          );
        } else {
          assert.equal(out, bits, `${dtype} bits ${hex(bits)}`);
        }
      }
    }
  });
});

describe("safetensors round trips", () => {
  it("writes F32, F16 and BF16 and reads them back (F32 exactly, the others within their rounding)", async () => {
    const x = tv.randn([3, 5, 7], { generator: new tv.Generator(1) });
    const ids = tv.intTensor([
      [1, -2, 2147483647],
      [-2147483648, 0, 50256],
    ]);
    for (const [dtype, relative] of [
      ["F32", 0],
      ["F16", 2 ** -11],
      ["BF16", 2 ** -8],
    ] as const) {
      const path = join(scratch, `round-trip-${dtype}.safetensors`);
      await tv.writeSafetensors(path, { x, ids }, { dtype, metadata: { format: "pt", note: "ünïcode" } });
      const { metadata, tensors } = await tv.readSafetensors(path);
      assert.deepEqual(metadata, { format: "pt", note: "ünïcode" });
      assert.deepEqual([...tensors.keys()], ["ids", "x"]); // I64 first: larger alignment
      const back = tensors.get("x") as tv.Tensor;
      assert.deepEqual(back.shape, [3, 5, 7]);
      for (let i = 0; i < x.size; i++) {
        assert.ok(
          Math.abs(back.data[i] - x.data[i]) <= relative * Math.abs(x.data[i]),
          `${dtype} element ${i}: ${back.data[i]} vs ${x.data[i]}`,
        );
      }
      assert.deepEqual(intsOf(tensors.get("ids")!), [...ids.data]);
      assert.deepEqual(tensors.get("ids")!.shape, [2, 3]);
    }
  });

  it("reads every loadable dtype: floats as Tensor, integers and bools as IntTensor", () => {
    const header = {
      f64: { dtype: "F64", shape: [3], data_offsets: [0, 24] },
      i64: { dtype: "I64", shape: [3], data_offsets: [24, 48] },
      f32: { dtype: "F32", shape: [2], data_offsets: [48, 56] },
      i32: { dtype: "I32", shape: [2], data_offsets: [56, 64] },
      i16: { dtype: "I16", shape: [2], data_offsets: [64, 68] },
      f16: { dtype: "F16", shape: [1], data_offsets: [68, 70] },
      bf16: { dtype: "BF16", shape: [1], data_offsets: [70, 72] },
      i8: { dtype: "I8", shape: [2], data_offsets: [72, 74] },
      u8: { dtype: "U8", shape: [2], data_offsets: [74, 76] },
      bool: { dtype: "BOOL", shape: [2], data_offsets: [76, 78] },
      empty: { dtype: "F32", shape: [0, 4], data_offsets: [78, 78] },
      scalar: { dtype: "I8", shape: [], data_offsets: [78, 79] },
    };
    const data = new Uint8Array(79);
    const view = new DataView(data.buffer);
    [0.1, 1e300, -2.5].forEach((v, i) => view.setFloat64(8 * i, v, true));
    [-5n, 2147483647n, -2147483648n].forEach((v, i) => view.setBigInt64(24 + 8 * i, v, true));
    [1.5, -3].forEach((v, i) => view.setFloat32(48 + 4 * i, v, true));
    [-7, 123456789].forEach((v, i) => view.setInt32(56 + 4 * i, v, true));
    [-32768, 32767].forEach((v, i) => view.setInt16(64 + 2 * i, v, true));
    view.setUint16(68, 0x3c00, true);
    view.setUint16(70, 0xc040, true);
    [-128, 127].forEach((v, i) => view.setInt8(72 + i, v));
    [0, 255].forEach((v, i) => view.setUint8(74 + i, v));
    [1, 0].forEach((v, i) => view.setUint8(76 + i, v));
    view.setInt8(78, -1);
    const { tensors } = tv.parseSafetensors(rawFile(header, data));
    assert.deepEqual(floatsOf(tensors.get("f64")!), [Math.fround(0.1), Infinity, -2.5]);
    assert.deepEqual(intsOf(tensors.get("i64")!), [-5, 2147483647, -2147483648]);
    assert.deepEqual(floatsOf(tensors.get("f32")!), [1.5, -3]);
    assert.deepEqual(intsOf(tensors.get("i32")!), [-7, 123456789]);
    assert.deepEqual(intsOf(tensors.get("i16")!), [-32768, 32767]);
    assert.deepEqual(floatsOf(tensors.get("f16")!), [1]);
    assert.deepEqual(floatsOf(tensors.get("bf16")!), [-3]);
    assert.deepEqual(intsOf(tensors.get("i8")!), [-128, 127]);
    assert.deepEqual(intsOf(tensors.get("u8")!), [0, 255]);
    assert.deepEqual(intsOf(tensors.get("bool")!), [1, 0]);
    assert.deepEqual(tensors.get("empty")!.shape, [0, 4]);
    assert.deepEqual(tensors.get("scalar")!.shape, []);
    assert.deepEqual(intsOf(tensors.get("scalar")!), [-1]);
  });

  it("refuses I64 values outside int32, naming the tensor and the value", () => {
    const data = new BigInt64Array([1n, 2n ** 40n]);
    const file = rawFile({ positions: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, data);
    assert.throws(
      () => tv.parseSafetensors(file, { source: "big.safetensors" }),
      /big\.safetensors: tensor "positions": I64 value 1099511627776 at flat index 1 is outside the int32 range/,
    );
  });

  it("loads a subset of names, and names a missing one", async () => {
    const path = join(scratch, "subset.safetensors");
    await tv.writeSafetensors(path, { a: tv.tensor([1]), b: tv.tensor([2, 3]), c: tv.intTensor([4]) });
    const { tensors } = await tv.readSafetensors(path, { names: ["c", "b"] });
    assert.deepEqual([...tensors.keys()].sort(), ["b", "c"]);
    await assert.rejects(
      tv.readSafetensors(path, { names: ["a", "zz"] }),
      /subset\.safetensors: no tensor named "zz" \(the file holds 3: /,
    );
  });

  it("accepts a Map, and refuses values that are not tensors and the reserved name", async () => {
    const bytes = tv.serializeSafetensors(new Map([["w", tv.tensor([1, 2])]]));
    assert.deepEqual(floatsOf(load(bytes, "w")), [1, 2]);
    assert.throws(
      () => tv.serializeSafetensors({ w: [1, 2] as unknown as tv.Tensor }),
      /"w" must be a Tensor or IntTensor, got Array/,
    );
    assert.throws(() => tv.serializeSafetensors({ __metadata__: tv.tensor([1]) }), /"__metadata__" is reserved/);
    assert.throws(
      () => tv.serializeSafetensors({ w: tv.tensor([1]) }, { dtype: "F64" as "F32" }),
      /dtype "F64" is not writable \(expected one of F32, F16, BF16\)/,
    );
    assert.throws(
      () => tv.serializeSafetensors({ w: tv.tensor([1]) }, { metadata: { n: 1 as unknown as string } }),
      /metadata "n" must be a string/,
    );
  });

  it("writes the Rust crate's layout: header padded with spaces to 8 bytes, no metadata key unless given", () => {
    const bytes = tv.serializeSafetensors({ b: tv.tensor([1]), a: tv.tensor([2]), ids: tv.intTensor([3]) });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(headerLength % 8, 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    assert.equal(
      text.trimEnd(),
      '{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},' +
        '"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}',
    );
    assert.match(text, /^[^ ]* *$/);
  });

  it("leaves no partial file behind when a write fails", async () => {
    const folder = join(scratch, "failing-write");
    const target = join(folder, "model.safetensors");
    await mkdir(join(target, "occupied"), { recursive: true }); // a non-empty folder where the file should go
    await assert.rejects(tv.writeSafetensors(target, { x: tv.tensor([1, 2, 3]) }));
    assert.deepEqual(await readdir(folder), ["model.safetensors"]);
    assert.deepEqual(await readdir(target), ["occupied"]);
  });
});

describe("pyvene fixture files", () => {
  it("reads the tiny models' weights with their HF names and shapes", async () => {
    const gpt2 = (await tv.readSafetensors(join(FIXTURES, "gpt2_tiny", "model.safetensors"))).tensors;
    assert.deepEqual(gpt2.get("transformer.h.0.attn.c_attn.weight")!.shape, [32, 96]); // Conv1D: (in, out)
    assert.deepEqual(gpt2.get("transformer.wte.weight")!.shape, [100, 32]);
    assert.deepEqual(gpt2.get("transformer.wpe.weight")!.shape, [64, 32]);
    assert.equal(gpt2.has("lm_head.weight"), false); // tied to wte, not stored
    assert.equal(gpt2.has("transformer.h.0.attn.bias"), false); // non-persistent buffer
    assert.ok([...gpt2.values()].every((t) => t instanceof tv.Tensor));

    const llama = (await tv.readSafetensors(join(FIXTURES, "llama_tiny_gqa", "model.safetensors"))).tensors;
    assert.deepEqual(llama.get("model.layers.0.self_attn.k_proj.weight")!.shape, [16, 32]); // 2 KV heads × 8
    assert.deepEqual(llama.get("model.layers.0.self_attn.q_proj.weight")!.shape, [32, 32]);
    assert.deepEqual(llama.get("lm_head.weight")!.shape, [100, 32]);

    const mlp = await tv.readSafetensors(join(FIXTURES, "mlp_tiny", "model.safetensors"));
    assert.deepEqual(mlp.metadata, { format: "pt" });
    assert.deepEqual(mlp.tensors.get("mlp.h.0.ff1.weight")!.shape, [16, 16]);
  });

  it("reads the result tensors: logits as Tensor, generated sequences (I64) as IntTensor", async () => {
    const { metadata, tensors } = await tv.readSafetensors(join(FIXTURES, "gpt2_tiny", "tensors.safetensors"));
    assert.equal(metadata.oracle_format, "1");
    const logits = tensors.get("ref/base/logits")!;
    assert.ok(logits instanceof tv.Tensor);
    assert.deepEqual(logits.shape, [2, 6, 100]);
    const sequences = tensors.get("case/generate_addition_every_new_token/sequences")!;
    assert.ok(sequences instanceof tv.IntTensor);
    assert.deepEqual(sequences.shape, [2, 11]);
    assert.ok([...sequences.data].every((id) => id >= 0 && id < 100));
    assert.deepEqual(tensors.get("ref/base/hidden_states/0")!.shape, [2, 6, 32]);
  });

  it("rewrites every fixture file byte for byte (the layout of the Rust crate)", async () => {
    for (const model of MODELS) {
      for (const file of ["model.safetensors", "tensors.safetensors"]) {
        const path = join(FIXTURES, model, file);
        const original = await readFile(path);
        const { metadata, tensors } = tv.parseSafetensors(original, { source: path });
        const rewritten = tv.serializeSafetensors(tensors, { metadata });
        assert.ok(Buffer.from(rewritten).equals(original), `${model}/${file} differs after a rewrite`);
      }
    }
  });

  it("reads a file's header alone", async () => {
    const header = await tv.readSafetensorsHeader(join(FIXTURES, "mlp_tiny", "model.safetensors"));
    assert.equal(header.dataStart, 8 + 480);
    assert.deepEqual(header.tensors.get("mlp.h.0.ff1.bias"), { dtype: "F32", shape: [16], dataOffsets: [0, 64] });
  });
});

describe("malformed safetensors files", () => {
  const entry = (dtype: string, shape: number[], offsets: number[]) => ({ dtype, shape, data_offsets: offsets });
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "shorter than the length prefix",
      new Uint8Array(5),
      /5 bytes is too short \(expected at least the 8-byte header length\)/,
    ],
    [
      "a header length past the end",
      (() => {
        const b = rawFile({});
        new DataView(b.buffer).setBigUint64(0, 1000n, true);
        return b;
      })(),
      /header length 1000 runs past the end of the 10-byte file/,
    ],
    [
      "a huge header length",
      (() => {
        const b = rawFile({});
        new DataView(b.buffer).setBigUint64(0, 2n ** 60n, true);
        return b;
      })(),
      /exceeds the 100000000-byte limit/,
    ],
    ["invalid JSON", rawFile("{not json"), /header is not valid UTF-8 JSON/],
    ["a JSON array", rawFile("[]"), /header must be a JSON object/],
    ["an unknown dtype", rawFile({ w: entry("F12", [1], [0, 2]) }, [0, 0]), /tensor "w": unknown dtype "F12"/],
    [
      "a bad shape",
      rawFile({ w: entry("F32", [-1], [0, 4]) }, [0, 0, 0, 0]),
      /tensor "w": shape must be an array of non-negative integers, got \[-1\]/,
    ],
    [
      "reversed offsets",
      rawFile({ w: entry("F32", [1], [4, 0]) }, [0, 0, 0, 0]),
      /tensor "w": data_offsets must be \[begin, end\] with 0 <= begin <= end/,
    ],
    [
      "a size that does not match the shape",
      rawFile({ w: entry("F32", [2, 3], [0, 20]) }, new Uint8Array(20)),
      /tensor "w": data_offsets \[0, 20\] span 20 bytes, but F32 of shape \[2, 3\] needs 24/,
    ],
    [
      "a gap",
      rawFile({ a: entry("F32", [1], [0, 4]), b: entry("F32", [1], [8, 12]) }, new Uint8Array(12)),
      /tensor "b" starts at data byte 8, expected 4 \(tensors must be contiguous/,
    ],
    [
      "an overlap",
      rawFile({ a: entry("F32", [2], [0, 8]), b: entry("F32", [1], [4, 8]) }, new Uint8Array(8)),
      /tensor "b" starts at data byte 4, expected 8/,
    ],
    [
      "truncated data",
      rawFile({ a: entry("F32", [4], [0, 16]) }, new Uint8Array(12)),
      /tensor "a" ends at data byte 16, past the end of the 12-byte data section/,
    ],
    [
      "trailing data",
      rawFile({ a: entry("F32", [1], [0, 4]) }, new Uint8Array(8)),
      /the tensors cover 4 bytes but the data section holds 8/,
    ],
    [
      "an absurd shape",
      rawFile({ w: entry("F32", [2 ** 40, 2 ** 40, 0], [0, 0]) }),
      /tensor "w": shape \[1099511627776, 1099511627776, 0\] is absurd/,
    ],
    [
      "a shape too large for its bytes",
      rawFile({ w: entry("F32", [2 ** 26, 2 ** 26], [0, 8]) }, new Uint8Array(8)),
      /tensor "w": shape \[67108864, 67108864\] is absurd/,
    ],
    ["non-string metadata", rawFile({ __metadata__: { step: 3 } }), /"__metadata__"."step" must be a string, got 3/],
  ];
  for (const [what, bytes, message] of cases) {
    it(`rejects ${what}, naming the file`, async () => {
      const path = join(scratch, "broken.safetensors");
      await writeFile(path, bytes);
      const error = await tv.readSafetensors(path).then(
        () => undefined,
        (e: Error) => e,
      );
      assert.ok(error instanceof Error, `${what}: no error`);
      assert.match(error.message, message);
      assert.ok(error.message.startsWith(`safetensors ${path}: `), error.message);
      assert.throws(() => tv.parseSafetensors(bytes, { source: "mem" }), message);
    });
  }

  it("names a missing file", async () => {
    await assert.rejects(tv.readSafetensors(join(scratch, "absent.safetensors")), /absent\.safetensors: no such file/);
  });

  it("validates headers with dtypes it cannot load, and refuses only when such a tensor is loaded", () => {
    const file = rawFile({ a: entry("F32", [1], [0, 4]), q: entry("F8_E4M3", [4], [4, 8]) }, new Uint8Array(8));
    assert.deepEqual(floatsOf(tv.parseSafetensors(file, { names: ["a"] }).tensors.get("a")!), [0]);
    assert.throws(
      () => tv.parseSafetensors(file, { source: "q.safetensors" }),
      /q\.safetensors: tensor "q" has dtype F8_E4M3, which tsvene does not load \(supported: F64, F32/,
    );
  });
});

function hex(bits: number): string {
  return `0x${bits.toString(16).padStart(4, "0")}`;
}

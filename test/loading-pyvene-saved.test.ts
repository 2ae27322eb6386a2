/**
 * Folders written by pyvene's IntervenableModel.save() (shared/fixtures/pyvene-saved), with their
 * state dicts in the safetensors form tsvene reads: pyvene's names, its int64 tensors (Boundless's
 * `intervention_population`, the `embed_dim` / `interchange_dim` buffers) kept as they are. They
 * load, and give pyvene's intervened logits. This test builds the safetensors form by hand from the
 * zips' raw storages, independently of the library's .bin reader (test/pyvene-bin.test.ts).
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, it } from "node:test";
import * as tv from "../src/index.js";

const ROOT = fileURLToPath(new URL("../../../shared/fixtures/pyvene-saved/", import.meta.url));
const scratch = await mkdtemp(join(tmpdir(), "tsvene-pyvene-saved-"));
after(() => rm(scratch, { recursive: true, force: true }));

interface SavedCase {
  name: string;
  folder: string;
  unit_locations: tv.ForwardOptions["unitLocations"];
  subspaces: unknown;
  batch: number;
  files: string[];
}

/** Each state dict's entries in storage order (data/0, data/1, …), as the pickle in the .bin lists them. */
const STATE_DICTS: Record<string, [name: string, dtype: "F32" | "I64", shape: number[]][]> = {
  rotated_L1: [
    ["embed_dim", "I64", []],
    ["interchange_dim", "I64", []],
    ["rotate_layer.parametrizations.weight.original", "F32", [32, 32]],
    ["rotate_layer.parametrizations.weight.0.base", "F32", [32, 32]],
  ],
  boundless_L2: [
    ["intervention_boundaries", "F32", [1]],
    ["temperature", "F32", []],
    ["intervention_population", "I64", [32]],
    ["embed_dim", "I64", []],
    ["interchange_dim", "I64", []],
    ["rotate_layer.parametrizations.weight.original", "F32", [32, 32]],
    ["rotate_layer.parametrizations.weight.0.base", "F32", [32, 32]],
  ],
};

/** The members of a zip written without compression (PyTorch's format), by name below the archive's folder. */
function storedZipMembers(bytes: Buffer): Map<string, Buffer> {
  const end = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const members = new Map<string, Buffer>();
  let at = bytes.readUInt32LE(end + 16);
  for (let i = bytes.readUInt16LE(end + 10); i > 0; i--) {
    const size = bytes.readUInt32LE(at + 24);
    const nameLength = bytes.readUInt16LE(at + 28);
    const name = bytes.toString("utf8", at + 46, at + 46 + nameLength);
    const local = bytes.readUInt32LE(at + 42);
    const start = local + 30 + bytes.readUInt16LE(local + 26) + bytes.readUInt16LE(local + 28);
    members.set(name.slice(name.indexOf("/") + 1), bytes.subarray(start, start + size));
    at += 46 + nameLength + bytes.readUInt16LE(at + 30) + bytes.readUInt16LE(at + 32);
  }
  return members;
}

/** pyvene's state dict of one intervention, as tensors under `{key}.{name}`: floats as Tensor, int64 as IntTensor. */
async function stateDict(c: SavedCase): Promise<Map<string, tv.Tensor | tv.IntTensor>> {
  const bin = c.files.find((f) => f.endsWith(".bin"))!;
  const key = bin.slice("intkey_".length, -".bin".length);
  const members = storedZipMembers(await readFile(join(ROOT, c.folder, bin)));
  return new Map(
    STATE_DICTS[c.name].map(([name, dtype, shape], k) => {
      const raw = members.get(`data/${k}`)!;
      const bytes = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
      const t =
        dtype === "F32"
          ? new tv.Tensor(new Float32Array(bytes), shape)
          : new tv.IntTensor(Int32Array.from(new BigInt64Array(bytes), Number), shape);
      return [`${key}.${name}`, t];
    }),
  );
}

it("pyvene's Rotated and Boundless folders, int64 intervention_population included, give pyvene's logits", async () => {
  const { cases } = JSON.parse(await readFile(join(ROOT, "cases.json"), "utf8")) as { cases: SavedCase[] };
  const expected = (await tv.readSafetensors(join(ROOT, "expected.safetensors"))).tensors;
  const { model } = await tv.loadPretrained(join(ROOT, "model"));
  const rows = (name: string, batch: number) => ({
    inputIds: tv.intTensor([...expected.get(name)!.data].slice(0, batch * 6), [batch, 6]),
  });
  for (const c of cases.filter((c) => c.name in STATE_DICTS)) {
    const folder = join(scratch, c.name);
    await mkdir(folder);
    await copyFile(join(ROOT, c.folder, "config.json"), join(folder, "config.json"));
    const state = await stateDict(c);
    await tv.writeSafetensors(join(folder, "interventions.safetensors"), state);
    const population = [...state].find(([name]) => name.endsWith(".intervention_population"));
    if (population)
      assert.equal(
        (await tv.readSafetensorsHeader(join(folder, "interventions.safetensors"))).tensors.get(population[0])!.dtype,
        "I64",
      );

    const im = await tv.loadIntervenable(folder, model);
    const { intervened } = tv.noGrad(() =>
      im.forward(rows("base", c.batch), [rows("source", c.batch)], {
        unitLocations: c.unit_locations,
        subspaces: c.subspaces,
      }),
    );
    const want = expected.get(`${c.name}/logits`)!;
    assert.deepEqual(intervened.logits.shape, want.shape, c.name);
    const drift = Math.max(...intervened.logits.data.map((v, i) => Math.abs(v - want.data[i])));
    assert.ok(drift < 1e-4, `${c.name}: logits differ from pyvene's by ${drift}`);
  }
});

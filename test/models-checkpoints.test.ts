/** A model saved as BF16 or in shards loads back to the same logits as its float32 original. */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import * as tv from "../src/index.js";
import { fixtureFolder } from "./support/fixtures.js";

/** Round-to-nearest-even of a float32 to bfloat16, computed on the bits (independent of the writer). */
function toBf16(x: number): number {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  if ((bits & 0x7f800000) === 0x7f800000) return x;
  const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000;
  return new Float32Array(new Uint32Array([rounded >>> 0]).buffer)[0];
}

it("sharded and BF16 copies of gpt2_tiny give the float32 logits (BF16: those of bf16-rounded weights)", async () => {
  const { model, config } = await tv.loadPretrained(fixtureFolder("gpt2_tiny"));
  const ids = tv.intTensor([[83, 54, 22, 99, 51, 27]]);
  const reference = model.run({ inputIds: ids }).logits;
  const weights = new Map(model.namedParameters());

  const sharded = await mkdtemp(join(tmpdir(), "tsvene-shards-"));
  await tv.saveCheckpoint(sharded, weights, { config, maxShardBytes: 20_000 });
  assert.ok((await tv.locateWeights(sharded)).size > 0);
  const fromShards = (await tv.loadPretrained(sharded)).model.run({ inputIds: ids }).logits;
  assert.deepEqual(fromShards.data, reference.data);

  const bf16 = await mkdtemp(join(tmpdir(), "tsvene-bf16-"));
  await tv.saveCheckpoint(bf16, weights, { config, dtype: "BF16" });
  const fromBf16 = (await tv.loadPretrained(bf16)).model.run({ inputIds: ids }).logits;
  const rounded = tv.modelFromConfig(config);
  rounded.loadStateDict(new Map([...weights].map(([k, t]) => [k, new tv.Tensor(t.data.map(toBf16), t.shape)])));
  assert.deepEqual(fromBf16.data, rounded.run({ inputIds: ids }).logits.data);
  const drift = Math.max(...fromBf16.data.map((v, i) => Math.abs(v - reference.data[i])));
  assert.ok(drift > 0 && drift < 0.05, `BF16 logits move by ${drift}`);
});

it("a sharded checkpoint whose config does not fit its weights is refused from the shards' headers", async () => {
  const { model, config } = await tv.loadPretrained(fixtureFolder("gpt2_tiny"));
  const folder = await mkdtemp(join(tmpdir(), "tsvene-shards-"));
  try {
    await tv.saveCheckpoint(folder, new Map(model.namedParameters()), {
      config: { ...config, n_layer: 6 },
      maxShardBytes: 20_000,
    });
    await assert.rejects(tv.loadPretrained(folder), /config\.json n_layer is 6 but the weights hold layers 0\.\.3/);
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
});

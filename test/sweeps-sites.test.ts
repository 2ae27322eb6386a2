/**
 * Activation patching on every per-position site of the site map, against brute force: an MLP's
 * activation (width 4·d on GPT-2, the gated width on Llama) through a plain IntervenableModel, and
 * GPT-2's attention pattern [B, H, T, T] at its query position through a hand-written hook.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { fixtureFolder } from "./support/fixtures.js";

const BASE = [83, 54, 22, 99, 51, 27];
const SOURCE = [54, 46, 23, 32, 54, 30];

function hookCount(model: tv.PretrainedModel): number {
  let hooks = 0;
  for (const [, m] of model.namedModules()) hooks += m.hookCount;
  return hooks;
}

function patch(model: tv.PretrainedModel, component: string): tv.PatchResult {
  return tv.activationPatching(model, {
    base: tv.intTensor([BASE]),
    source: tv.intTensor([SOURCE]),
    baseTokens: BASE.map(String),
    sourceTokens: SOURCE.map(String),
    component,
    metric: "logit",
  });
}

/** The base run with `component` at (layer, position p) taken from the source run by a VanillaIntervention. */
function vanillaCell(model: tv.PretrainedModel, component: string, layer: number, p: number, target: number): number {
  const im = new tv.IntervenableModel([{ layer, component, interventionType: tv.VanillaIntervention }], model);
  const side = [[[p]]];
  const { intervened } = im.forward({ inputIds: tv.intTensor([BASE]) }, [{ inputIds: tv.intTensor([SOURCE]) }], {
    unitLocations: { "sources->base": [side, side] },
  });
  return tv.measure(intervened.logits, target, "logit")[0];
}

/** Every cell as brute force computes it, and some cell away from the base run's value (the patch bites). */
function assertGrid(result: tv.PatchResult, cell: (layer: number, p: number) => number): void {
  const grid = result.grid;
  assert.ok(grid.values.some((v) => Math.abs(v - result.base) > 5e-5));
  for (let l = 0; l < grid.rows; l++) {
    for (let p = 0; p < grid.cols; p++) {
      const expected = cell(l, p);
      const actual = grid.values[l * grid.cols + p];
      assert.ok(Math.abs(actual - expected) <= 1e-5, `cell (${l}, ${p}): ${actual} vs brute force ${expected}`);
    }
  }
}

describe("activation patching on every per-position site", () => {
  let gpt2: tv.PretrainedModel;
  let llama: tv.PretrainedModel;
  before(async () => {
    gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    llama = (await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model;
  });

  for (const family of ["gpt2", "llama"] as const) {
    it(`mlp_activation (wider than the residual stream) equals patching each cell on its own (${family})`, () => {
      const model = family === "gpt2" ? gpt2 : llama;
      const result = patch(model, "mlp_activation");
      assert.deepEqual([result.grid.rows, result.grid.cols], [model.numLayers, BASE.length]);
      assertGrid(result, (l, p) => vanillaCell(model, "mlp_activation", l, p, result.target));
      assert.equal(hookCount(model), 0);
    });
  }

  it("attention_weight is patched at its query position: that row of every head, as a hand-written hook", () => {
    const result = patch(gpt2, "attention_weight");
    const pattern = (l: number) => gpt2.getModule(`transformer.h.${l}.attn.attn_dropout`);
    const sourcePatterns: tv.Tensor[] = [];
    const reads = [0, 1, 2, 3].map((l) =>
      pattern(l).addPreHook((_m, input) => void (sourcePatterns[l] = input as tv.Tensor)),
    );
    gpt2.run({ inputIds: tv.intTensor([SOURCE]) });
    for (const read of reads) read.remove();
    assertGrid(result, (l, p) => {
      const handle = pattern(l).addPreHook((_m, input) => {
        const [, heads, length] = (input as tv.Tensor).shape;
        const data = Float32Array.from((input as tv.Tensor).data);
        for (let h = 0; h < heads; h++) {
          const row = (h * length + p) * length;
          data.set(sourcePatterns[l].data.subarray(row, row + length), row);
        }
        return new tv.Tensor(data, (input as tv.Tensor).shape);
      });
      try {
        return tv.measure(gpt2.run({ inputIds: tv.intTensor([BASE]) }).logits, result.target, "logit")[0];
      } finally {
        handle.remove();
      }
    });
    assert.equal(hookCount(gpt2), 0);
  });

  it("refuses head components with the reason and the way to sweep them, and unknown components", () => {
    assert.throws(
      () => patch(gpt2, "head_attention_value_output"),
      /activationPatching: component "head_attention_value_output" is a head component .*sweep it with headPatching/,
    );
    assert.throws(() => patch(llama, "attention_weight"), /component "attention_weight" is not available for llama/);
    assert.equal(hookCount(gpt2) + hookCount(llama), 0);
  });
});

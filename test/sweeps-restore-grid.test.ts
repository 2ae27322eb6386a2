/**
 * The restoring sweeps' grid engine (src/sweeps/restore-grid.ts, row-packing.ts) against brute force:
 * every cell recomputed on its own through the public IntervenableModel (test/support/cell-runs.ts),
 * for prompts long enough to be split into passes of consecutive positions (resumed from the
 * corrupted run's cache), for several noise draws in one pass or in separate passes, and for the
 * ragged rows' packing itself against hand-computed layouts.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { recordRun, topToken, windowLayers } from "../src/sweeps/engine.js";
import { restoreGrids } from "../src/sweeps/restore-grid.js";
import { linearStages, RaggedRows } from "../src/sweeps/row-packing.js";
import { cellProbabilities } from "./support/cell-runs.js";
import { fixtureFolder } from "./support/fixtures.js";

/** A prompt of `length` ids below 100 (the tiny fixtures' vocabulary), the same on every run. */
function prompt(length: number, seed: number): number[] {
  return Array.from({ length }, (_, i) => (i * 37 + seed * 11 + 5) % 100);
}

function hookCount(model: tv.PretrainedModel): number {
  let hooks = 0;
  for (const [, m] of model.namedModules()) hooks += m.hookCount;
  return hooks;
}

describe("restoring grids in passes", () => {
  let gpt2: tv.PretrainedModel;
  let llama: tv.PretrainedModel;
  before(async () => {
    gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    llama = (await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model;
  });

  for (const [family, component, window] of [
    ["gpt2", "block_output", 1],
    ["llama", "mlp_output", 2],
  ] as const) {
    it(`a 60-token trace in several passes equals brute force (${family}, ${component}, window ${window})`, () => {
      const model = family === "gpt2" ? gpt2 : llama;
      const ids = prompt(60, 1);
      const width = (model as tv.DecoderModel).settings.hiddenSize;
      const corruptedPositions = [3, 4, 5];
      const noise = tv.randn([3, width], { std: 0.5, generator: new tv.Generator(7) });
      let total = 0;
      const trace = tv.causalTrace(model, {
        inputIds: tv.intTensor([ids]),
        tokens: ids.map(String),
        corruptedPositions,
        noise,
        component,
        window,
        onProgress: (_done, all) => void (total = all),
      });
      // Several passes of numLayers blocks each: the prompt is too long for one.
      assert.ok(total >= 3 * model.numLayers, `${total / model.numLayers} passes`);
      for (let l = 0; l < model.numLayers; l++) {
        const layers = windowLayers(l, window, model.numLayers);
        for (let p = 0; p < ids.length; p++) {
          const expected = cellProbabilities(model, {
            patched: ids,
            restored: ids,
            component,
            layers,
            position: p,
            corruption: { positions: corruptedPositions, noise },
          })[trace.target];
          const actual = trace.grid.values[l * ids.length + p];
          assert.ok(Math.abs(actual - expected) <= 1e-6, `cell (${l}, ${p}): ${actual} vs brute force ${expected}`);
        }
      }
      assert.equal(hookCount(model), 0);
    });
  }

  it("a 60-token patching runs in several passes and equals brute force; base and source as plain runs", () => {
    const base = prompt(60, 3);
    const source = prompt(60, 4);
    let total = 0;
    const patch = tv.activationPatching(gpt2, {
      base: tv.intTensor([base]),
      source: tv.intTensor([source]),
      baseTokens: base.map(String),
      sourceTokens: source.map(String),
      onProgress: (_done, all) => void (total = all),
    });
    assert.ok(total >= 3 * gpt2.numLayers, `${total / gpt2.numLayers} passes`);
    const lastProbabilities = (ids: number[]) => {
      const logits = gpt2.run({ inputIds: tv.intTensor([ids]), lastPositionLogits: true }).logits;
      return tv.softmax(logits, -1).data;
    };
    const sourceProbabilities = lastProbabilities(source);
    assert.equal(patch.target, topToken(tv.tensor(sourceProbabilities, [1, 1, 100])));
    assert.ok(Math.abs(patch.source - sourceProbabilities[patch.target]) <= 1e-6);
    assert.ok(Math.abs(patch.base - lastProbabilities(base)[patch.target]) <= 1e-6);
    for (let l = 0; l < gpt2.numLayers; l++) {
      for (let p = 0; p < base.length; p++) {
        const cell = { patched: base, restored: source, component: "block_output", layers: [l], position: p };
        const expected = cellProbabilities(gpt2, cell)[patch.target];
        const actual = patch.grid.values[l * base.length + p];
        assert.ok(Math.abs(actual - expected) <= 1e-6, `cell (${l}, ${p}): ${actual} vs brute force ${expected}`);
      }
    }
  });

  it("several noise draws give the same grids in one pass, one pass each, or split by positions", () => {
    const model = gpt2 as tv.DecoderModel;
    const ids = prompt(9, 2);
    const positions = [1, 2];
    const draws = tv.randn([3, 2, 32], { std: 0.5, generator: new tv.Generator(3) });
    const clean = tv.causalTrace(model, {
      inputIds: tv.intTensor([ids]),
      tokens: ids.map(String),
      corruptedPositions: positions,
      noise: draws,
    });
    const run = (passPositions: number) => {
      const recorded = recordRun(model, { inputIds: tv.intTensor([ids]) }, "attention_output", null);
      return restoreGrids({
        model,
        inputIds: tv.intTensor([ids]),
        component: "attention_output",
        window: 3,
        patched: [0, 1, 2].map((s) => ({ positions, noise: tv.squeeze(tv.slice(draws, 0, s, s + 1), 0) })),
        restored: recorded,
        target: clean.target,
        metric: "logit",
        passPositions,
      });
    };
    const together = run(100_000);
    for (const budget of [200, 40]) {
      const apart = run(budget);
      together.grids.forEach((grid, s) =>
        grid.forEach((v, i) => assert.ok(Math.abs(v - apart.grids[s][i]) <= 1e-5, `budget ${budget}, draw ${s}`)),
      );
      together.patched.forEach((v, s) => assert.ok(Math.abs(v - apart.patched[s]) <= 1e-5));
    }
    // Each draw's own corrupted run, as a separate plain run measures it.
    for (let s = 0; s < 3; s++) {
      const noise = tv.squeeze(tv.slice(draws, 0, s, s + 1), 0);
      const corrupted = recordRun(model, { inputIds: tv.intTensor([ids]) }, "block_output", { positions, noise });
      const expected = tv.measure(corrupted.logits, clean.target, "logit")[0];
      assert.ok(Math.abs(together.patched[s] - expected) <= 1e-5);
    }
    assert.equal(hookCount(model), 0);
  });
});

describe("ragged rows", () => {
  // Rows of 3 slots: row 0 owns all, row 1 owns slot 2, row 2 owns slots 1 and 2; both borrow from row 0.
  const rows = RaggedRows.borrowing(3, [0, 2, 1], [0, 0, 0]);
  const x = tv.tensor([0, 1, 2, 10, 11, 12, 20, 21, 22], [3, 3, 1]);

  it("packs the own slots in row order and unpacks with the borrowed slots taken from the lender", () => {
    const packed = rows.pack(x);
    assert.deepEqual(packed.shape, [1, 6, 1]);
    assert.deepEqual([...packed.data], [0, 1, 2, 12, 21, 22]);
    const unpacked = rows.unpack(tv.mul(packed, 2));
    assert.deepEqual(unpacked.shape, [3, 3, 1]);
    assert.deepEqual([...unpacked.data], [0, 2, 4, 0, 2, 24, 0, 42, 44]);
    assert.equal(rows.ragged, true);
    assert.equal(RaggedRows.borrowing(3, [0, 0], [0, 1]).ragged, false);
    // The last slots alone: every other slot repeats its row's last one.
    const last = RaggedRows.lastSlots(3, 3);
    assert.deepEqual([...last.pack(x).data], [2, 12, 22]);
    assert.deepEqual([...last.unpack(last.pack(x)).data], [2, 2, 2, 12, 12, 12, 22, 22, 22]);
  });

  it("refuses a lender that borrows itself and values of the wrong layout", () => {
    assert.throws(
      () => RaggedRows.borrowing(3, [1, 2], [0, 0]),
      /row 0 borrows from row 0, which does not own every slot/,
    );
    assert.throws(() => rows.pack(tv.zeros([2, 3, 1])), /expected rows \[3, 3, W\], got \[2,3,1\]/);
    assert.throws(() => rows.unpack(tv.zeros([1, 5, 1])), /expected packed values \[1, 6, W\]/);
  });

  it("packs the MLP and the attention projections, except a stage enclosing the written site", async () => {
    const gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model as tv.DecoderModel;
    const neox = (await tv.loadPretrained(fixtureFolder("gpt_neox_tiny"))).model as tv.DecoderModel;
    const llama = (await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model as tv.DecoderModel;
    const h1 = "transformer.h.1";
    assert.deepEqual(linearStages(gpt2, 1, gpt2.site("block_output", 1)), {
      projections: [`${h1}.attn.c_attn`],
      rest: [`${h1}.attn.c_proj`, `${h1}.mlp`],
    });
    assert.deepEqual(linearStages(gpt2, 1, gpt2.site("mlp_activation", 1)), {
      projections: [`${h1}.attn.c_attn`],
      rest: [`${h1}.attn.c_proj`],
    });
    const l2 = "model.layers.2.self_attn";
    assert.deepEqual(linearStages(llama, 2, llama.site("attention_output", 2)), {
      projections: [`${l2}.q_proj`, `${l2}.k_proj`, `${l2}.v_proj`],
      rest: [`${l2}.o_proj`, "model.layers.2.mlp"],
    });
    // GPT-NeoX's site map names no query/key/value outputs (its projection is fused head by head).
    assert.deepEqual(linearStages(neox, 0, neox.site("block_output", 0)), {
      projections: [],
      rest: ["gpt_neox.layers.0.attention.dense", "gpt_neox.layers.0.mlp"],
    });
  });
});

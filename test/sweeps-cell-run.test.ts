/**
 * traceCellRun and patchCellRun (the run behind one clicked cell) against the same cell recomputed
 * with the public IntervenableModel (test/support/cell-runs.ts): probabilities over the whole
 * vocabulary within 1e-5, the trace's averaged over its noise draws as causalTrace draws them; the
 * target's entry equals the grid's cell; bad cells are refused and no hook is left behind.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { cellProbabilities } from "./support/cell-runs.js";

const BASE = "Ka Bo lives in the city of";
const SOURCE = "Ro Vi lives in the city of";

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  actual.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - expected[i]))));
  assert.ok(worst <= 1e-5, `${what}: largest difference ${worst}`);
}

function hookCount(model: tv.PretrainedModel): number {
  let hooks = 0;
  for (const [, m] of model.namedModules()) hooks += m.hookCount;
  return hooks;
}

describe("the run behind one grid cell", () => {
  let model: tv.PretrainedModel;
  let ids: (text: string) => number[];
  before(async () => {
    const loaded = await tv.loadDefaultModel();
    model = loaded.model;
    ids = (text) => loaded.tokenizer!.encode(text);
  });

  it("traceCellRun: each draw's corrupted run restored at the cell's window, averaged over the draws", () => {
    const prompt = ids(BASE);
    const options = {
      inputIds: tv.intTensor([prompt]),
      tokens: prompt.map(String),
      corruptedPositions: [0, 1],
      component: "mlp_output",
      window: 3,
      seed: 5,
      samples: 3,
    };
    const trace = tv.causalTrace(model, options);
    const width = model.settings.hiddenSize;
    const draws = tv.randn([3, 2, width], { std: trace.noiseStd!, generator: new tv.Generator(5) });
    for (const [layer, position, layers] of [
      [5, 1, [4, 5]],
      [3, 6, [2, 3, 4]],
    ] as const) {
      const run = tv.traceCellRun(model, options, { layer, position });
      assert.deepEqual(run.layers, layers);
      assert.equal(run.draws, 3);
      const expected = new Float32Array(run.probabilities.length);
      for (let s = 0; s < 3; s++) {
        const noise = tv.squeeze(tv.slice(draws, 0, s, s + 1), 0);
        const one = cellProbabilities(model, {
          patched: prompt,
          restored: prompt,
          component: "mlp_output",
          layers: [...layers],
          position,
          corruption: { positions: [0, 1], noise },
        });
        one.forEach((p, i) => (expected[i] += p / 3));
      }
      assertClose(run.probabilities, expected, `trace cell (${layer}, ${position})`);
      const cell = trace.grid.values[layer * trace.grid.cols + position];
      assert.ok(Math.abs(run.probabilities[trace.target] - cell) <= 1e-5);
    }
    assert.equal(hookCount(model), 0);
  });

  it("patchCellRun: the base run with the cell taken from the source run", () => {
    const [base, source] = [ids(BASE), ids(SOURCE)];
    const options = {
      base: tv.intTensor([base]),
      source: tv.intTensor([source]),
      baseTokens: base.map(String),
      sourceTokens: source.map(String),
      component: "block_output",
    };
    const patch = tv.activationPatching(model, options);
    const run = tv.patchCellRun(model, options, { layer: 2, position: 1 });
    const expected = cellProbabilities(model, {
      patched: base,
      restored: source,
      component: "block_output",
      layers: [2],
      position: 1,
    });
    assertClose(run.probabilities, expected, "patch cell (2, 1)");
    assert.equal(run.target, patch.target);
    assert.ok(Math.abs(run.probabilities[patch.target] - patch.grid.values[2 * patch.grid.cols + 1]) <= 1e-5);
    assert.ok(Math.abs(run.probabilities[patch.target] - patch.base) > 1e-3, "the patch changes the prediction");
  });

  it("refuses a cell outside the grid and unknown options, leaving no hook", () => {
    const prompt = ids(BASE);
    const options = { base: tv.intTensor([prompt]), source: tv.intTensor([prompt]), baseTokens: [], sourceTokens: [] };
    const valid = { ...options, baseTokens: prompt.map(String), sourceTokens: prompt.map(String) };
    assert.throws(
      () => tv.patchCellRun(model, valid, { layer: model.numLayers, position: 0 }),
      /patchCellRun: the cell must be \{ layer: 0\.\.5, position: 0\.\.6 \}/,
    );
    assert.throws(() => tv.patchCellRun(model, valid, { layer: 0, position: -1 }), /position: 0\.\.6/);
    assert.throws(
      () => tv.patchCellRun(model, valid, { layer: 0, position: 1, pos: 2 } as never),
      /patchCellRun cell: unknown option "pos"; expected one of layer, position/,
    );
    assert.throws(() => tv.traceCellRun(model, { ...valid, seed: 1 } as never, { layer: 0, position: 0 }), /base/);
    assert.equal(hookCount(model), 0);
  });
});

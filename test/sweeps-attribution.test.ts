/**
 * Attribution patching against brute force: exact where patching is linear in the patched value,
 * rank-correlated with activation patching on the fixtures' models, and each cell equal to a
 * finite-difference directional derivative.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import type { InterventionUnits } from "../src/intervene/locations.js";
import { fixtureFolder } from "./support/fixtures.js";

const CLEAN = [83, 54, 22, 99, 51, 27];
/** One token swapped: the usual setting of attribution patching (a minimal pair). */
const CORRUPTED = [83, 17, 22, 99, 51, 27];
type Unit = "pos" | "h" | "h.pos";

/** pyvene's locations of one unit cell: a position, a head (all positions), or a head at a position. */
function cellLocations(unit: Unit, head: number, position: number): InterventionUnits {
  if (unit === "pos") return [[position]];
  if (unit === "h") return [[head]];
  return [[[head]], [[position]]];
}

/** Last-position logits of `base` with one cell of the component from `source`, by a plain IntervenableModel. */
function patchedLogits(
  model: tv.PretrainedModel,
  base: number[],
  source: number[],
  component: string,
  layer: number,
  unit: Unit,
  locations: InterventionUnits,
): tv.Tensor {
  const representation = { layer, component, unit };
  const collected = new tv.IntervenableModel(
    { ...representation, interventionType: tv.CollectIntervention },
    model,
  ).forward({ inputIds: tv.intTensor([source]) }, null, { unitLocations: { base: [locations] } }).collected;
  const im = new tv.IntervenableModel({ ...representation, interventionType: tv.VanillaIntervention }, model);
  return im.forward({ inputIds: tv.intTensor([base]) }, null, {
    unitLocations: { base: [locations] },
    sourceRepresentations: collected,
  }).intervened.logits;
}

/** Brute-force grid of metric(patched) − metric(corrupted), laid out as attributionPatching lays out `unit`. */
function bruteForce(
  model: tv.PretrainedModel,
  result: tv.AttributionResult,
  layers: number[],
  metric: (logits: tv.Tensor) => number,
): Map<number, number> {
  const base = metric(model.run({ inputIds: tv.intTensor([CORRUPTED]) }).logits);
  const cells = new Map<number, number>();
  const { rows, cols } = result.grid;
  for (let row = 0; row < rows; row++) {
    const layer = result.grid.layers[row];
    if (!layers.includes(layer)) continue;
    for (let col = 0; col < cols; col++) {
      const head = result.unit === "h" ? col : result.unit === "h.pos" ? result.heads![row] : 0;
      const locations = cellLocations(result.unit, head, col);
      const logits = patchedLogits(model, CORRUPTED, CLEAN, result.component, layer, result.unit, locations);
      cells.set(row * cols + col, metric(logits) - base);
    }
  }
  return cells;
}

function ranks(values: number[]): number[] {
  const order = values.map((_, i) => i).sort((a, b) => values[a] - values[b]);
  const out = new Array<number>(values.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && values[order[j + 1]] === values[order[i]]) j++;
    for (let k = i; k <= j; k++) out[order[k]] = (i + j) / 2;
    i = j + 1;
  }
  return out;
}

function spearman(a: number[], b: number[]): number {
  const [x, y] = [ranks(a), ranks(b)];
  const mean = (v: number[]) => v.reduce((s, e) => s + e, 0) / v.length;
  const [mx, my] = [mean(x), mean(y)];
  let [sxy, sxx, syy] = [0, 0, 0];
  for (let i = 0; i < x.length; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

function hookCount(model: tv.PretrainedModel): number {
  let hooks = 0;
  for (const [, m] of model.namedModules()) hooks += m.hookCount;
  return hooks;
}

const prompts = { clean: tv.intTensor([CLEAN]), corrupted: tv.intTensor([CORRUPTED]) };

describe("attribution patching", () => {
  let gpt2: tv.PretrainedModel;
  let llama: tv.PretrainedModel;
  before(async () => {
    gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
    llama = (await tv.loadPretrained(fixtureFolder("llama_tiny_gqa"))).model;
  });

  it("is exact where patching is linear: the last layer of a GPT-2 without final norm and last MLP", async () => {
    // Replacing ln_f by a scaling and zeroing the last MLP's output weight leaves the logits an affine
    // function of the last layer's sites (attention is linear in its values), so first order = brute
    // force. The scaling (×100) lifts the random tiny model's effects from ~1e-4 to ~1e-2.
    const { model } = await tv.loadPretrained(fixtureFolder("gpt2_tiny"));
    const last = model.numLayers - 1;
    for (const [name, p] of model.namedParameters())
      if (name === `transformer.h.${last}.mlp.c_proj.weight`) p.data.fill(0);
    const bypass = model.getModule("transformer.ln_f").addPostHook((_m, input) => tv.mul(input as tv.Tensor, 100));
    try {
      const cases: [string, Unit][] = [
        ["block_output", "pos"],
        ["attention_output", "pos"],
        ["head_attention_value_output", "h"],
        ["head_attention_value_output", "h.pos"],
        ["head_value_output", "h.pos"],
      ];
      for (const [component, unit] of cases) {
        const logit = tv.attributionPatching(model, { ...prompts, component, unit, metric: "logit", target: 7 });
        const diff = tv.attributionPatching(model, {
          ...prompts,
          component,
          unit,
          metric: "logitDiff",
          target: 7,
          contrast: 3,
        });
        const logitOf = (t: number) => (logits: tv.Tensor) => tv.measure(logits, t, "logit")[0];
        const expectedLogit = bruteForce(model, logit, [last], logitOf(7));
        const expectedDiff = bruteForce(model, diff, [last], (l) => logitOf(7)(l) - logitOf(3)(l));
        for (const [result, expected] of [
          [logit, expectedLogit],
          [diff, expectedDiff],
        ] as const) {
          assert.ok(expected.size > 0);
          assert.ok(
            [...expected.values()].some((v) => Math.abs(v) > 1e-3),
            `${component}: patching changes the metric`,
          );
          for (const [i, value] of expected) {
            const got = result.grid.values[i];
            assert.ok(
              Math.abs(got - value) <= 1e-5,
              `${component} ${unit} ${result.metric} cell ${i}: ${got} vs ${value}`,
            );
          }
        }
      }
    } finally {
      bypass.remove();
    }
    assert.equal(hookCount(model), 0);
  });

  // Threshold 0.8, measured: on these prompts the lowest Spearman ρ of the cases below is 0.85
  // (gpt2_tiny block_output, logit), mlp/attention/heads 0.94–1.0. Over 15 random single-token
  // pairs per model, mlp_output, attention_output and head ρ had their lower quartile ≥ 0.89;
  // block_output is the weakest (early-layer residual patches at the swapped token are far from
  // linear, as the method's authors note), so it is tested only on this pair.
  for (const modelName of ["gpt2_tiny", "llama_tiny_gqa"]) {
    it(`ranks cells as activation patching does (${modelName}, ρ ≥ 0.8)`, () => {
      const model = modelName === "gpt2_tiny" ? gpt2 : llama;
      for (const component of ["block_output", "mlp_output", "attention_output"]) {
        for (const metric of ["logit", "probability"] as const) {
          const estimate = tv.attributionPatching(model, { ...prompts, component, metric });
          const patch = tv.activationPatching(model, {
            base: prompts.corrupted,
            source: prompts.clean,
            baseTokens: CORRUPTED.map(String),
            sourceTokens: CLEAN.map(String),
            component,
            metric,
            target: estimate.target,
          });
          assert.ok(Math.abs(estimate.corrupted - patch.base) < 1e-6 && Math.abs(estimate.clean - patch.source) < 1e-6);
          const rho = spearman(
            [...estimate.grid.values],
            [...patch.grid.values].map((v) => v - patch.base),
          );
          assert.ok(rho >= 0.8, `${modelName} ${component} ${metric}: Spearman ρ ${rho.toFixed(3)}`);
        }
      }
      const heads = tv.attributionPatching(model, {
        ...prompts,
        component: "head_attention_value_output",
        metric: "logit",
      });
      assert.deepEqual([heads.grid.rows, heads.grid.cols], [model.numLayers, 4]);
      const layers = Array.from({ length: model.numLayers }, (_, l) => l);
      const expected = bruteForce(model, heads, layers, (l) => tv.measure(l, heads.target, "logit")[0]);
      const rho = spearman([...heads.grid.values], [...expected.values()]);
      assert.ok(rho >= 0.8, `${modelName} heads: Spearman ρ ${rho.toFixed(3)}`);
      assert.equal(hookCount(model), 0);
    });
  }

  it("each cell is the directional derivative along clean − corrupted (finite differences)", () => {
    const [layer, position, component] = [1, 1, "mlp_output"];
    const result = tv.attributionPatching(gpt2, { ...prompts, component, metric: "probability" });
    const collect = (ids: number[]) =>
      new tv.IntervenableModel({ layer, component, interventionType: tv.CollectIntervention }, gpt2).forward(
        { inputIds: tv.intTensor([ids]) },
        null,
        { unitLocations: { base: [[[position]]] } },
      ).collected[0];
    const direction = tv.sub(collect(CLEAN), collect(CORRUPTED));
    const add = new tv.IntervenableModel({ layer, component, interventionType: tv.AdditionIntervention }, gpt2);
    const metricAt = (eps: number) =>
      tv.measure(
        add.forward(prompts.corrupted, null, {
          unitLocations: { base: [[[position]]] },
          sourceRepresentations: [tv.mul(direction, eps)],
        }).intervened.logits,
        result.target,
        "probability",
      )[0];
    const eps = 1e-2;
    const finiteDifference = (metricAt(eps) - metricAt(-eps)) / (2 * eps);
    const cell = result.grid.values[layer * result.grid.cols + position];
    assert.ok(Math.abs(cell) > 1e-6, "the cell is not trivially 0");
    assert.ok(
      Math.abs(finiteDifference - cell) <= 1e-2 * Math.abs(cell),
      `${cell} vs finite difference ${finiteDifference}`,
    );
  });

  it("leaves the model's parameters as they were: no gradient stored, trainable flags kept", () => {
    gpt2.requireGrad(true);
    try {
      tv.attributionPatching(gpt2, { ...prompts, component: "attention_output" });
      for (const [name, p] of gpt2.namedParameters()) {
        assert.equal(p.grad, null, name);
        assert.equal(p.requiresGrad, true, name);
      }
    } finally {
      gpt2.requireGrad(false);
    }
  });

  it("refuses bad options naming the field, and leaves no hook behind", () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...prompts, metrc: "logit" }, /metrc/],
      [{ ...prompts, corrupted: tv.intTensor([CORRUPTED.slice(1)]) }, /same length/],
      [{ ...prompts, metric: "loss" }, /metric must be/],
      [{ ...prompts, contrast: 3 }, /contrast is only read by metric "logitDiff"/],
      [{ ...prompts, metric: "logitDiff", target: 3, contrast: 3 }, /contrast is the target/],
      [{ ...prompts, component: "head_attention_value_output", unit: "pos" }, /unit must be "h" or "h.pos"/],
      [{ ...prompts, component: "attention_weight" }, /attention_weight.*not one value per position/],
      [{ ...prompts, component: "nope" }, /component "nope" is not available/],
      [{ ...prompts, tokens: ["a"] }, /tokens must be 6 strings/],
      [{ ...prompts, target: 1000 }, /target must be a token id/],
      [{ ...prompts, metric: "logitDiff", contrast: 2.5 }, /contrast must be a token id/],
    ];
    for (const [options, message] of bad) {
      assert.throws(() => tv.attributionPatching(gpt2, options as unknown as tv.AttributionOptions), message);
      assert.equal(hookCount(gpt2), 0);
    }
    assert.throws(() => tv.noGrad(() => tv.attributionPatching(gpt2, prompts)), /noGrad/);
  });
});

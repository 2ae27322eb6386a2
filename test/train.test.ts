/**
 * Training support: optimiser updates against hand computation (worked in float64 from the
 * textbook formulas), HF's warm-up schedule at chosen steps, pyvene's training-support methods
 * on IntervenableModel, and the alignment loop on a toy MLP whose right alignment is known.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tv from "../src/index.js";
import { fixtureFolder } from "./support/fixtures.js";

const G1 = [0.5, -1];
const G2 = [0.1, 0.3];
const G3 = [-0.2, 0.4];

/** Runs `steps` updates of a fresh [1, −2] parameter with the given gradients; returns the values after each. */
function trajectory(make: (p: tv.Tensor) => tv.Optimizer, grads: number[][]): number[][] {
  const p = tv.tensor([1, -2]).requireGrad();
  const opt = make(p);
  return grads.map((g) => {
    p.grad = tv.tensor(g);
    opt.step();
    return [...p.data];
  });
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

describe("Adam", () => {
  it("follows torch.optim.Adam over three steps (bias-corrected moments)", () => {
    // Step 1: m̂ = g, v̂ = g², so each coordinate moves by lr·g/(|g| + ε) ≈ 0.1 against its gradient.
    // Step 2, coordinate 0: m = 0.9·0.05 + 0.1·0.1 = 0.055, v = 0.999·0.00025 + 0.001·0.01 = 0.00025975,
    //   0.9 − 0.1·(0.055/0.19)/√(0.00025975/0.001999) = 0.8196959.
    const got = trajectory((p) => new tv.Adam([p], { lr: 0.1 }), [G1, G2, G3]);
    assertClose(got[0], [0.9, -1.9], 1e-6, "step 1");
    assertClose(got[1], [0.8196959064, -1.8572151424], 1e-6, "step 2");
    assertClose(got[2], [0.7852605318, -1.8492092385], 1e-6, "step 3");
  });

  it("bias correction makes the first step lr per coordinate, whatever the gradient's scale", () => {
    const p = tv.tensor([0, 0]).requireGrad();
    p.grad = tv.tensor([1e-3, 100]);
    new tv.Adam([p], { lr: 0.01 }).step();
    assertClose(p.data, [(-0.01 * 1e-3) / (1e-3 + 1e-8), -0.01], 1e-8, "p");
  });

  it("adds ε after the bias-corrected square root", () => {
    // g = 1e-9 at step 1: m̂ = 1e-9, √v̂ = 1e-9, so the step is lr·1e-9/(1e-9 + 1e-8) = lr/11.
    // (ε inside the root would give lr·1e-5; ε before the correction, lr·0.0032.)
    const p = tv.tensor([0]).requireGrad();
    p.grad = tv.tensor([1e-9]);
    new tv.Adam([p], { lr: 1 }).step();
    assertClose(p.data, [-1 / 11], 1e-6, "p");
  });

  it("weight decay is an L2 term added to the gradient (Adam) or decoupled (AdamW)", () => {
    // Adam: step 1 uses g + 0.5·p = [1, −2]; still a step of lr per coordinate.
    const l2 = trajectory((p) => new tv.Adam([p], { lr: 0.1, weightDecay: 0.5 }), [G1, G2]);
    assertClose(l2[0], [0.9, -1.9], 1e-6, "Adam step 1");
    assertClose(l2[1], [0.8054201323, -1.8132675838], 1e-6, "Adam step 2");
    // AdamW: p·(1 − 0.1·0.5) first, then the plain Adam step: 1·0.95 − 0.1 = 0.85.
    const decoupled = trajectory((p) => new tv.AdamW([p], { lr: 0.1, weightDecay: 0.5 }), [G1, G2]);
    assertClose(decoupled[0], [0.85, -1.8], 1e-6, "AdamW step 1");
    assertClose(decoupled[1], [0.7271959063, -1.6672151424], 1e-6, "AdamW step 2");
  });

  it("keeps per-parameter state, skips parameters without a gradient, and zeroGrad drops gradients", () => {
    const a = tv.tensor([1]).requireGrad();
    const b = tv.tensor([5]).requireGrad();
    const opt = new tv.Adam([a, b], { lr: 0.1 });
    a.grad = tv.tensor([2]);
    opt.step();
    assert.deepEqual([...b.data], [5]);
    assert.equal(opt.state.get(a)?.step, 1);
    assert.equal(opt.state.has(b), false);
    opt.zeroGrad();
    assert.equal(a.grad, null);
  });
});

describe("SGD", () => {
  it("plain steps with L2 weight decay", () => {
    // d = g + 0.5·p: step 1 d = [1, −2] → [0.9, −1.8]; step 2 d = [0.55, −0.6] → [0.845, −1.74];
    // step 3 d = [0.2225, −0.47] → [0.82275, −1.693].
    const got = trajectory((p) => new tv.SGD([p], { lr: 0.1, weightDecay: 0.5 }), [G1, G2, G3]);
    assertClose(got.flat(), [0.9, -1.8, 0.845, -1.74, 0.82275, -1.693], 1e-6, "p");
  });

  it("momentum, dampening and Nesterov", () => {
    // μ = 0.9: b = g₁, then b = 0.9·b + g: [0.55, −0.6], [0.295, −0.14].
    const momentum = trajectory((p) => new tv.SGD([p], { lr: 0.1, momentum: 0.9 }), [G1, G2, G3]);
    assertClose(momentum.flat(), [0.95, -1.9, 0.895, -1.84, 0.8655, -1.826], 1e-6, "momentum");
    // τ = 0.5 damps every gradient but the first: b₂ = 0.9·g₁ + 0.5·g₂ = [0.5, −0.75].
    const damped = trajectory((p) => new tv.SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.5 }), [G1, G2]);
    assertClose(damped.flat(), [0.95, -1.9, 0.9, -1.825], 1e-6, "dampening");
    // Nesterov: d = g + 0.9·b: step 1 d = 1.9·g₁; step 2 d = g₂ + 0.9·[0.55, −0.6] = [0.595, −0.24].
    const nesterov = trajectory((p) => new tv.SGD([p], { lr: 0.1, momentum: 0.9, nesterov: true }), [G1, G2, G3]);
    assertClose(nesterov.flat(), [0.905, -1.81, 0.8455, -1.786, 0.83895, -1.8134], 1e-6, "nesterov");
  });
});

describe("parameter groups", () => {
  it("each group has its own learning rate and other hyperparameters", () => {
    const a = tv.tensor([1, 1]).requireGrad();
    const b = tv.tensor([1, 1]).requireGrad();
    const adam = new tv.Adam([{ params: [a] }, { params: [b], lr: 0.5 }], { lr: 0.1 });
    a.grad = tv.tensor([3, -3]);
    b.grad = tv.tensor([3, -3]);
    adam.step();
    assertClose(a.data, [0.9, 1.1], 1e-6, "group 0 (lr 0.1)");
    assertClose(b.data, [0.5, 1.5], 1e-6, "group 1 (lr 0.5)");

    const c = tv.tensor([1]).requireGrad();
    const d = tv.tensor([1]).requireGrad();
    const sgd = new tv.SGD([{ params: [c], momentum: 0.9 }, { params: [d] }], { lr: 0.1 });
    for (const g of [1, 1]) {
      c.grad = tv.tensor([g]);
      d.grad = tv.tensor([g]);
      sgd.step();
    }
    assertClose(c.data, [1 - 0.1 - 0.19], 1e-6, "with momentum");
    assertClose(d.data, [1 - 0.1 - 0.1], 1e-6, "without");
  });

  it("rejects bad groups and hyperparameters, naming the field", () => {
    const p = tv.tensor([1]).requireGrad();
    assert.throws(() => new tv.Adam([], {}), /Adam: got an empty parameter list/);
    assert.throws(
      () => new tv.Adam([{ params: [p] }, { params: [p] }]),
      /Adam: paramGroups\[1\]\.params\[0\] is the same tensor as Adam: paramGroups\[0\]\.params\[0\]/,
    );
    assert.throws(
      () => new tv.Adam([{ params: [p], learningRate: 1 } as never]),
      /paramGroups\[0\]: unknown option "learningRate"; expected one of params, lr, betas, eps, weightDecay/,
    );
    assert.throws(
      () => new tv.Adam([p], { betas: [0.9, 1] }),
      /paramGroups\[0\]\.betas\[1\] must be in \[0, 1\), got 1/,
    );
    assert.throws(() => new tv.SGD([p], { lr: -1 }), /SGD: paramGroups\[0\]\.lr must be a finite number ≥ 0, got -1/);
    assert.throws(() => new tv.SGD([p], { nesterov: true }), /nesterov needs momentum > 0 and dampening 0/);
    assert.throws(
      () => new tv.AdamW([tv.mul(p, 2)]),
      /AdamW: paramGroups\[0\]\.params\[0\] is computed from other tensors/,
    );
  });
});

describe("schedules", () => {
  it("HF's linear warm-up factors at chosen steps, with pyvene's fractional warm-up", () => {
    // pyvene: warm-up 0.1·25 = 2.5 steps of 25.
    const at = (s: number) => tv.linearWarmupFactor(s, 2.5, 25);
    assert.deepEqual([0, 1, 2].map(at), [0, 0.4, 0.8]);
    assert.equal(at(3), 22 / 22.5);
    assert.equal(at(10), 15 / 22.5);
    assert.equal(at(25), 0);
    assert.equal(at(30), 0);
    assert.equal(tv.linearWarmupFactor(0, 0, 4), 1);
    assert.equal(tv.linearWarmupFactor(0, 0.5, 1), 0);
    assert.equal(tv.linearWarmupFactor(1, 0.5, 1), 0);
  });

  it("sets the lr at construction and after each step, so the first update uses factor(0)", () => {
    const p = tv.tensor([1]).requireGrad();
    const opt = new tv.SGD([{ params: [p] }, { params: [tv.tensor([0]).requireGrad()], lr: 1 }], { lr: 0.1 });
    const schedule = tv.linearScheduleWithWarmup(opt, 2, 10);
    const seen: number[][] = [schedule.lastLr()];
    p.grad = tv.tensor([1]);
    opt.step();
    assert.deepEqual([...p.data], [1], "lr 0 during the first update");
    for (let i = 0; i < 3; i++) {
      schedule.step();
      seen.push(schedule.lastLr());
    }
    assertClose(seen.flat(), [0, 0, 0.05, 0.5, 0.1, 1, (0.1 * 7) / 8, 7 / 8], 1e-12, "lrs");
    const constant = tv.constantSchedule(opt);
    constant.step();
    assertClose(constant.lastLr(), [(0.1 * 7) / 8, 7 / 8], 1e-12, "constant");
  });

  it("linspace gives torch.linspace's float32 values", () => {
    const f = Math.fround;
    // step d = (0.1 − 50)/4 in float32; the first half counts up from 50, the rest down from 0.1.
    const d = f(f(f(0.1) - 50) / 4);
    assert.deepEqual(tv.linspace(50, 0.1, 5), [50, f(50 + d), f(f(0.1) - f(2 * d)), f(f(0.1) - d), f(0.1)]);
    assert.deepEqual(tv.linspace(3, 7, 1), [3]);
    assert.deepEqual(tv.linspace(3, 7, 0), []);
  });
});

/** pyvene's MLP (one block) with an identity ReLU block and a score that reads d·h, d = (1, 1, 0, 0)/√2. */
function toyModel(): tv.PretrainedModel {
  const model = tv.modelFromConfig({
    model_type: "mlp",
    h_dim: 4,
    n_layer: 1,
    num_classes: 2,
    activation_function: "relu",
  });
  const k = 8 / Math.SQRT2;
  model.loadStateDict({
    "mlp.h.0.ff1.weight": tv.tensor([
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
    ]),
    "mlp.h.0.ff1.bias": tv.zeros([4]),
    "score.weight": tv.tensor([
      [0, 0, 0, 0],
      [k, k, 0, 0],
    ]),
    "score.bias": tv.tensor([0, -8 * THRESHOLD]),
  });
  return model;
}

const THRESHOLD = 0.7;

interface ToyBatch {
  base: { inputsEmbeds: tv.Tensor };
  source: { inputsEmbeds: tv.Tensor };
  labels: tv.IntTensor;
  [key: string]: unknown;
}

/**
 * Counterfactual data: base and source in [0, 1]⁴; the label is whether d·source > THRESHOLD,
 * which the model outputs once the base's d-component is swapped for the source's.
 */
function toyBatches(count: number, size: number, seed: number, flatKeys: boolean): ToyBatch[] {
  const gen = new tv.Generator(seed);
  return Array.from({ length: count }, () => {
    const base = tv.rand([size, 1, 4], { generator: gen });
    const source = tv.rand([size, 1, 4], { generator: gen });
    const labels = tv.intTensor(
      Array.from({ length: size }, (_, i) =>
        Number((source.data[4 * i] + source.data[4 * i + 1]) / Math.SQRT2 > THRESHOLD),
      ),
    );
    const batch: ToyBatch = { base: { inputsEmbeds: base }, source: { inputsEmbeds: source }, labels };
    const rows = Array.from({ length: size }, () => [0]);
    if (flatKeys) Object.assign(batch, { "source_0->base.0.pos": rows, "source_0->base.1.pos": rows });
    else batch.unitLocations = { "sources->base": 0 };
    return batch;
  });
}

function accuracy(logits: tv.Tensor, labels: tv.IntTensor): number {
  const predicted = logits.argmax(-1).data;
  return predicted.reduce((n, p, i) => n + Number(p === labels.data[i]), 0) / labels.size;
}

function rotatedToy(
  seed: number,
  interchangeDim = 1,
): { im: tv.IntervenableModel; intervention: tv.RotatedSpaceIntervention } {
  const intervention = new tv.RotatedSpaceIntervention({ embedDim: 4, generator: new tv.Generator(seed) });
  intervention.setInterchangeDim(interchangeDim);
  const im = new tv.IntervenableModel({ layer: 0, component: "block_output", intervention }, toyModel());
  return { im, intervention };
}

const crossEntropy = (logits: tv.Tensor, labels: tv.IntTensor) => tv.crossEntropy(logits, labels);

describe("trainAlignment and evalAlignment", () => {
  it("learn the known alignment: a one-dimensional rotated swap onto d", () => {
    const { im, intervention } = rotatedToy(1);
    const train = toyBatches(16, 16, 1, true);
    const test = toyBatches(4, 64, 2, false);
    // The truth: a rotation whose first column is d, which the loss cannot beat by much.
    const ideal = rotatedToy(1);
    const a = Math.SQRT1_2;
    ideal.intervention.rotateLayer.setWeight(
      tv.tensor([
        [a, a, 0, 0],
        [a, -a, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
      ]),
    );
    const idealLoss = tv.evalAlignment(ideal.im, train, {
      computeMetrics: (logits, labels: tv.IntTensor) => crossEntropy(logits, labels).item(),
    });
    const idealAccuracy = tv.evalAlignment(ideal.im, test, { computeMetrics: accuracy });

    const before = tv.evalAlignment(im, test, { computeMetrics: accuracy });
    const { losses, metrics, updates } = tv.trainAlignment(im, train, {
      computeLoss: crossEntropy,
      computeMetrics: accuracy,
      lr: 0.05,
      epochs: 5,
    });
    assert.equal(updates, 80);
    assert.equal(losses.length, 80);
    assert.equal(metrics.length, 80);
    const mean = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / xs.length;
    const first = mean(losses.slice(0, 16));
    const last = mean(losses.slice(-16));
    assert.ok(last < first && last - idealLoss < 0.01, `loss ${first} → ${last} (ideal ${idealLoss})`);
    const after = tv.evalAlignment(im, test, { computeMetrics: accuracy });
    assert.equal(idealAccuracy, 1);
    assert.ok(before < 0.6 && after >= 0.95, `interchange accuracy ${before} → ${after}`);
    const w = tv.noGrad(() => intervention.rotateLayer.weight());
    const alignment = Math.abs(w.data[0] + w.data[4]) * a;
    assert.ok(alignment > 0.99, `|w₀·d| = ${alignment}`);
  });

  it("gradient accumulation over k batches equals one batch k times larger", () => {
    const data = toyBatches(1, 16, 5, false)[0];
    const slice = (start: number, size: number): ToyBatch => ({
      base: { inputsEmbeds: data.base.inputsEmbeds.slice(0, start, start + size) },
      source: { inputsEmbeds: data.source.inputsEmbeds.slice(0, start, start + size) },
      labels: tv.intTensor([...data.labels.data.subarray(start, start + size)]),
      unitLocations: { "sources->base": 0 },
    });
    const run = (size: number, accumulation: number) => {
      const { im, intervention } = rotatedToy(7, 2);
      const batches = Array.from({ length: 16 / size }, (_, i) => slice(i * size, size));
      const optimizer = new tv.SGD(im.getTrainableParameters(), { lr: 0.5, momentum: 0.5 });
      const updated: boolean[] = [];
      const { updates } = tv.trainAlignment(im, batches, {
        computeLoss: crossEntropy,
        epochs: 2,
        gradientAccumulationSteps: accumulation,
        optimizer,
        scheduler: null,
        onStep: (info) => updated.push(info.updated),
      });
      assert.equal(updates, (2 * 16) / size / accumulation);
      assert.deepEqual(
        updated,
        Array.from({ length: (2 * 16) / size }, (_, i) => (i + 1) % accumulation === 0),
      );
      assert.equal(intervention.rotateLayer.original.grad, null, "gradients are cleared at the end");
      return [...intervention.rotateLayer.original.data];
    };
    const big = run(8, 1);
    const accumulated = run(4, 2);
    const small = run(4, 1);
    assertClose(accumulated, big, 1e-6, "θ");
    assert.ok(
      small.some((v, i) => Math.abs(v - big[i]) > 1e-3),
      "separate small batches differ",
    );
  });

  it("anneals Boundless temperatures with float32 linspace(50, 0.1) after each update", () => {
    const intervention = new tv.BoundlessRotatedSpaceIntervention({ embedDim: 4, generator: new tv.Generator(1) });
    const im = new tv.IntervenableModel({ layer: 0, component: "block_output", intervention }, toyModel());
    const seen: number[] = [];
    const computeLoss = (logits: tv.Tensor, labels: tv.IntTensor) => {
      seen.push(intervention.getTemperature().item());
      return tv.crossEntropy(logits, labels);
    };
    tv.trainAlignment(im, toyBatches(3, 4, 3, true), { computeLoss, epochs: 1 });
    const schedule = tv.linspace(50, 0.1, 3);
    assert.deepEqual(seen, [50, schedule[0], schedule[1]]);
    assert.equal(intervention.getTemperature().item(), Math.fround(0.1));
  });

  it("evalAlignment averages batch metrics weighted by batch size", () => {
    const { im } = rotatedToy(11);
    const all = toyBatches(1, 10, 9, false)[0];
    const cut = (start: number, size: number): ToyBatch => ({
      base: { inputsEmbeds: all.base.inputsEmbeds.slice(0, start, start + size) },
      source: { inputsEmbeds: all.source.inputsEmbeds.slice(0, start, start + size) },
      labels: tv.intTensor([...all.labels.data.subarray(start, start + size)]),
      unitLocations: { "sources->base": 0 },
    });
    const batches = [cut(0, 2), cut(2, 3), cut(5, 5)];
    const { intervened } = tv.noGrad(() =>
      im.forward(all.base, [all.source], { unitLocations: { "sources->base": 0 } }),
    );
    const overall = accuracy(intervened.logits, all.labels);
    assert.ok(Math.abs(tv.evalAlignment(im, batches, { computeMetrics: accuracy }) - overall) < 1e-12);
    const record = tv.evalAlignment(im, batches, {
      computeMetrics: (logits, labels: tv.IntTensor) => ({ accuracy: accuracy(logits, labels), size: labels.size }),
    });
    assert.ok(Math.abs(record.accuracy - overall) < 1e-12);
    assert.equal(record.size, (2 * 2 + 3 * 3 + 5 * 5) / 10);
    // pyvene-shaped batches through an inputs collator: input_ids, source_input_ids and flat location keys.
    const raw = batches.map((b) => ({ x: b.base, y: b.source, labels: b.labels }));
    const collated = tv.evalAlignment(im, raw, {
      computeMetrics: accuracy,
      inputsCollator: ({ x, y, labels }) => ({
        input_ids: x,
        source_input_ids: y,
        labels,
        "source_0->base.0.pos": tv.intTensor(new Array(labels.size).fill(0), [labels.size, 1]),
        "source_0->base.1.pos": tv.intTensor(new Array(labels.size).fill(0), [labels.size, 1]),
      }),
    });
    assert.ok(Math.abs(collated - overall) < 1e-12);
    assert.equal(tv.weightedAverage([0.5, 1, 0.2], [2, 3, 5]), 0.5);
    assert.throws(() => tv.weightedAverage([1, 2], [1]), /2 values and 1 weights \(the lengths must be the same\)/);
  });

  it("trains the model itself after enableModelGradients (IIT), and needs something to train", () => {
    const model = toyModel();
    const im = new tv.IntervenableModel(
      { layer: 0, component: "block_output", interventionType: tv.VanillaIntervention },
      model,
    );
    const batches = toyBatches(2, 4, 4, true);
    assert.throws(() => tv.trainAlignment(im, batches, { computeLoss: crossEntropy, epochs: 1 }), /nothing to train/);
    im.enableModelGradients();
    const before = [...model.getModule("score").parameters()[0].data];
    tv.trainAlignment(im, batches, { computeLoss: crossEntropy, epochs: 2, lr: 0.1 });
    assert.notDeepEqual([...model.getModule("score").parameters()[0].data], before);
    assert.ok(model.parameters().every((p) => p.grad === null));
  });

  it("checks its inputs", () => {
    const { im } = rotatedToy(1);
    const [batch] = toyBatches(1, 2, 1, true);
    const opts = { computeLoss: crossEntropy, epochs: 1 };
    assert.throws(
      () => tv.trainAlignment(im, [batch], { ...opts, epochs: 0 }),
      /epochs must be a positive integer, got 0/,
    );
    assert.throws(
      () =>
        tv.trainAlignment(
          im,
          (function* () {
            yield batch;
          })() as never,
          opts,
        ),
      /batches must be an array, or an iterable with a length/,
    );
    assert.throws(
      () => tv.trainAlignment(im, [{ ...batch, source: undefined }], opts),
      /no source input \(give source, or pyvene's source_input_ids\)/,
    );
    assert.throws(
      () => tv.trainAlignment(im, [batch], { ...opts, computeLoss: (logits) => logits }),
      /computeLoss must return a one-value Tensor, got shape \[2, 2\]/,
    );
    assert.throws(
      () => tv.trainAlignment(im, [batch], { ...opts, computeLoss: (logits) => logits.detach().sum() }),
      /does not depend on any trainable parameter/,
    );
    assert.throws(() => tv.evalAlignment(im, [], { computeMetrics: accuracy }), /the batches were empty/);
  });
});

describe("batchUnitLocations (pyvene's flat batch keys)", () => {
  let gpt2: tv.PretrainedModel;
  before(async () => {
    gpt2 = (await tv.loadPretrained(fixtureFolder("gpt2_tiny"))).model;
  });

  it("parallel: intervention i reads source_i->base; two-level units give [heads, positions]", () => {
    const im = new tv.IntervenableModel(
      [
        { layer: 0, component: "block_output" },
        { layer: 1, component: "head_attention_value_output", unit: "h.pos" },
      ],
      gpt2,
    );
    const locations = tv.batchUnitLocations(im, {
      "source_0->base.0.pos": tv.intTensor([[1], [2]], [2, 1]),
      "source_0->base.1.pos": [[3], [4]],
      "source_1->base.0.h": [[0], [1]],
      "source_1->base.0.pos": [[5], [5]],
      "source_1->base.1.h": [[1], [0]],
      "source_1->base.1.pos": [[2], [2]],
      labels: null,
    });
    assert.deepEqual(locations, {
      "sources->base": [
        [
          [[1], [2]],
          [
            [[0], [1]],
            [[5], [5]],
          ],
        ],
        [
          [[3], [4]],
          [
            [[1], [0]],
            [[2], [2]],
          ],
        ],
      ],
    });
    const ids = tv.intTensor([
      [1, 2, 3, 4, 5, 6],
      [6, 5, 4, 3, 2, 1],
    ]);
    assert.doesNotThrow(() => tv.noGrad(() => im.forward(ids, [ids], { unitLocations: locations })));
    assert.throws(
      () => tv.batchUnitLocations(im, { "source_0->base.0.pos": [[1]] }),
      /batch\["source_0->base\.1\.pos"\] is missing \(intervention 0/,
    );
    assert.throws(() => tv.batchUnitLocations(im, { labels: 1 }), /no unit locations/);
  });

  it("serial: group g reads source_g->source_{g+1}, the last group source_g->base", () => {
    const im = new tv.IntervenableModel(
      {
        representations: [
          { layer: 0, component: "block_output" },
          { layer: 2, component: "block_output" },
        ],
        mode: "serial",
      },
      gpt2,
    );
    const locations = tv.batchUnitLocations(im, {
      "source_0->source_1.0.pos": [[1]],
      "source_0->source_1.1.pos": [[2]],
      "source_1->base.0.pos": [[3]],
      "source_1->base.1.pos": [[4]],
    });
    assert.deepEqual(locations, { "source_0->source_1": [[[[1]]], [[[2]]]], "source_1->base": [[[[3]]], [[[4]]]] });
  });
});

describe("IntervenableModel training methods", () => {
  const mlp = () => tv.modelFromConfig({ model_type: "mlp", h_dim: 8, n_layer: 2, num_classes: 2 });
  const single = (rep: Record<string, unknown>) =>
    new tv.IntervenableModel({ layer: 0, component: "block_output", ...rep }, mlp());

  it("countParameters counts what takes a gradient, a linked group once (pyvene's examples)", () => {
    assert.equal(single({ interventionType: tv.RotatedSpaceIntervention }).countParameters(), 64);
    assert.equal(single({ interventionType: tv.BoundlessRotatedSpaceIntervention }).countParameters(), 66);
    assert.equal(single({ interventionType: tv.SigmoidMaskIntervention }).countParameters(), 9);
    assert.equal(
      single({ interventionType: tv.LowRankRotatedSpaceIntervention, lowRankDimension: 2 }).countParameters(),
      16,
    );
    assert.equal(single({ interventionType: tv.VanillaIntervention }).countParameters(), 0);
    const linked = new tv.IntervenableModel(
      [
        { layer: 0, component: "block_output", interventionType: tv.RotatedSpaceIntervention, interventionLinkKey: 0 },
        { layer: 1, component: "block_output", interventionType: tv.RotatedSpaceIntervention, interventionLinkKey: 0 },
      ],
      mlp(),
    );
    assert.equal(linked.countParameters(), 64);
    assert.equal(linked.getTrainableParameters().length, 1);
    assert.deepEqual(
      linked.namedParameters().map(([n]) => n),
      [`${linked.keys[0]}.rotate_layer.parametrizations.weight.original`],
    );
  });

  it("getTrainableParameters lists the interventions' parameters, then the model's once it trains", () => {
    const im = single({ interventionType: tv.BoundlessRotatedSpaceIntervention });
    const key = im.keys[0];
    assert.deepEqual(
      im.namedParameters().map(([n]) => n),
      [`${key}.intervention_boundaries`, `${key}.temperature`, `${key}.rotate_layer.parametrizations.weight.original`],
    );
    im.enableModelGradients();
    // 2 blocks × (8·8 + 8) + score 8·2 + 2.
    assert.equal(im.countParameters({ includeModel: true }), 66 + 162);
    assert.equal(im.countParameters(), 66);
    const names = im.namedParameters().map(([n]) => n);
    assert.deepEqual(names.slice(3), [
      "model.mlp.h.0.ff1.weight",
      "model.mlp.h.0.ff1.bias",
      "model.mlp.h.1.ff1.weight",
      "model.mlp.h.1.ff1.bias",
      "model.score.weight",
      "model.score.bias",
    ]);
    assert.equal(im.getTrainableParameters()[3], im.model.parameters()[0]);
    im.disableModelGradients();
    assert.equal(im.countParameters({ includeModel: true }), 66);
    assert.ok(im.model.parameters().every((p) => !p.requiresGrad));
  });

  it("enableModelGradients lets gradients reach the model; zeroGrad clears them with the interventions'", () => {
    const im = single({ interventionType: tv.RotatedSpaceIntervention });
    const x = { inputsEmbeds: tv.rand([2, 1, 8], { generator: new tv.Generator(2) }) };
    const run = () => im.forward(x, [x], { unitLocations: { "sources->base": 0 } }).intervened.logits.sum();
    assert.equal(run().requiresGrad, true);
    run().backward();
    assert.ok(im.model.parameters().every((p) => p.grad === null));
    im.enableModelGradients();
    run().backward();
    assert.ok(im.getTrainableParameters().every((p) => p.grad !== null));
    im.zeroGrad();
    assert.ok(im.getTrainableParameters().every((p) => p.grad === null));
  });

  it("setTemperature reaches BoundlessRotatedSpace and SigmoidMask, as pyvene's", () => {
    const im = new tv.IntervenableModel(
      [
        { layer: 0, component: "block_output", interventionType: tv.BoundlessRotatedSpaceIntervention },
        { layer: 1, component: "block_output", interventionType: tv.SigmoidMaskIntervention },
        { layer: 1, component: "block_input", interventionType: tv.SigmoidMaskRotatedSpaceIntervention },
      ],
      mlp(),
    );
    im.setTemperature(2.5);
    const temperatures = [...im.interventions.values()].map((iv) =>
      (iv as unknown as { getTemperature(): tv.Tensor }).getTemperature().item(),
    );
    assert.deepEqual(temperatures, [2.5, 2.5, 50]);
  });
});

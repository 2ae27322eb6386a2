/**
 * Finite-difference gradient checking. The analytic gradient of L = Σ f(inputs) ⊙ R (R a fixed
 * random weighting, so every output element matters with a different weight) is compared with
 * central differences of L, one input element at a time. Inputs are float32, so the step is
 * large-ish and the tolerance loose; L is accumulated in float64.
 */
import assert from "node:assert/strict";
import { Generator, type Tensor, noGrad, randn } from "../../src/index.js";

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
}

function weightedSum(out: Tensor, weights: Float32Array): number {
  let s = 0;
  for (let i = 0; i < out.size; i++) s += out.data[i] * weights[i];
  return s;
}

export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const { eps = 1e-3, atol = 5e-4, rtol = 2e-3 } = options;
  for (const t of inputs) {
    t.grad = null;
  }
  const out = fn(...inputs);
  assert.ok(out.requiresGrad, "output does not require a gradient");
  const weights = randn(out.shape, { generator: new Generator(1234) });
  out.backward(weights);
  inputs.forEach((input, which) => {
    if (!input.requiresGrad) return;
    assert.ok(input.grad, `input ${which} received no gradient`);
    const analytic = input.grad.data;
    for (let i = 0; i < input.size; i++) {
      const original = input.data[i];
      input.data[i] = original + eps;
      const plus = noGrad(() => weightedSum(fn(...inputs), weights.data));
      input.data[i] = original - eps;
      const minus = noGrad(() => weightedSum(fn(...inputs), weights.data));
      input.data[i] = original;
      const numeric = (plus - minus) / (2 * eps);
      const diff = Math.abs(numeric - analytic[i]);
      assert.ok(
        diff <= atol + rtol * Math.abs(numeric),
        `input ${which} element ${i}: analytic ${analytic[i]} vs numeric ${numeric} (diff ${diff})`,
      );
    }
  });
}

/** A leaf of the given shape with seeded normal values, marked as needing a gradient. */
export function leaf(shape: number[], seed: number, scale = 1, shift = 0): Tensor {
  const t = randn(shape, { generator: new Generator(seed), std: scale, mean: shift });
  return t.requireGrad();
}

/**
 * The attention ops on heads read in place (tensor/ops/attention.ts) against the same attention
 * built from the general ops (split heads by copying, matmul, transpose, whereCausal, the padding
 * mask, softmax, merge heads): forward values, gradients, the cache layout, and bad input.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeHeads, splitHeads } from "../src/nn/attention.js";
import { paddingMask, whereCausal } from "../src/nn/masks.js";
import * as tv from "../src/index.js";
import { gradcheck, leaf } from "./support/gradcheck.js";

const HEADS = 3;
const DIM = 4;
const WIDTH = HEADS * DIM;

/** Block `part` (0 q, 1 k, 2 v) of a fused q|k|v projection, heads split by copying. */
function copiedHeads(qkv: tv.Tensor, part: number): tv.Tensor {
  return splitHeads(tv.slice(qkv, -1, part * WIDTH, (part + 1) * WIDTH), HEADS);
}

/** HF's eager GPT-2 attention from the general ops: scores / divisor, causal where, + padding, softmax, P·V. */
function referenceAttention(qkv: tv.Tensor, divisor: number, padding: tv.Tensor | null, window?: number): tv.Tensor {
  const scores = tv.matmul(copiedHeads(qkv, 0), tv.transpose(copiedHeads(qkv, 1), -1, -2));
  let masked = whereCausal(tv.div(scores, divisor), window);
  if (padding) masked = tv.add(masked, padding);
  return mergeHeads(tv.matmul(tv.softmax(masked, -1), copiedHeads(qkv, 2)));
}

function fusedAttention(qkv: tv.Tensor, divisor: number, padding: tv.Tensor | null, window?: number): tv.Tensor {
  const scores = tv.attentionScores(tv.packedHeads(qkv, HEADS, 0, WIDTH), tv.packedHeads(qkv, HEADS, WIDTH, WIDTH));
  const probs = tv.attentionSoftmax(scores, { divisor, padding, window });
  return tv.attentionContext(probs, tv.packedHeads(qkv, HEADS, 2 * WIDTH, WIDTH));
}

function assertClose(actual: tv.Tensor, expected: tv.Tensor, tolerance: number, label: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  actual.data.forEach((v, i) => {
    const e = expected.data[i];
    assert.ok(Math.abs(v - e) <= tolerance * Math.max(1, Math.abs(e)), `${label}[${i}]: ${v} vs ${e}`);
  });
}

const leftPadded = tv.intTensor([
  [1, 1, 1, 1, 1],
  [0, 0, 1, 1, 1],
]);

describe("attention ops on heads read in place", () => {
  it("give HF's eager attention: scores, masked softmax and merged context", () => {
    const qkv = leaf([2, 5, 3 * WIDTH], 1, 2);
    const padding = paddingMask(leftPadded, 2, 5);
    for (const window of [undefined, 2]) {
      const q = tv.packedHeads(qkv, HEADS, 0, WIDTH);
      const k = tv.packedHeads(qkv, HEADS, WIDTH, WIDTH);
      const scores = tv.attentionScores(q, k);
      const copiedScores = tv.matmul(copiedHeads(qkv, 0), tv.transpose(copiedHeads(qkv, 1), -1, -2));
      assertClose(scores, copiedScores, 1e-6, "scores");
      // Same scores in, the masked softmax is the very same float32 arithmetic as div, where, add and softmax.
      const probs = tv.attentionSoftmax(scores, { divisor: Math.sqrt(DIM + 1), padding, window });
      const expected = tv.softmax(tv.add(whereCausal(tv.div(scores, Math.sqrt(DIM + 1)), window), padding), -1);
      assert.deepEqual(probs.data, expected.data);
      assertClose(
        tv.attentionContext(probs, tv.packedHeads(qkv, HEADS, 2 * WIDTH, WIDTH)),
        mergeHeads(tv.matmul(probs, copiedHeads(qkv, 2))),
        1e-6,
        `context (window ${window})`,
      );
    }
  });

  it("read a key/value cache [B, H, S, d] with more keys than queries", () => {
    const queries = leaf([2, 2, WIDTH], 2);
    const cache = leaf([2, HEADS, 6, DIM], 3);
    const scores = tv.attentionScores(tv.packedHeads(queries, HEADS), tv.stackedHeads(cache), 0.5);
    const expected = tv.mul(tv.matmul(splitHeads(queries, HEADS), tv.transpose(cache, -1, -2)), 0.5);
    assertClose(scores, expected, 1e-6, "scores against a cache");
    const probs = tv.attentionSoftmax(scores);
    assert.deepEqual(probs.data, tv.softmax(whereCausal(scores), -1).data);
    // The first query sits at position 4 of 6: it sees keys 0..4.
    assert.equal(probs.data[5], 0);
    assert.ok(probs.data[4] > 0);
    assertClose(
      tv.attentionContext(probs, tv.stackedHeads(cache)),
      mergeHeads(tv.matmul(probs, cache)),
      1e-6,
      "context from a cache",
    );
  });

  it("have the gradients of the general ops' attention", () => {
    const padding = paddingMask(leftPadded, 2, 5);
    const qkv = leaf([2, 5, 3 * WIDTH], 4);
    const weights = tv.randn([2, 5, WIDTH], { generator: new tv.Generator(5) });
    const gradient = (attention: typeof fusedAttention) => {
      qkv.grad = null;
      attention(qkv, 2, padding).backward(weights);
      assert.ok(qkv.grad);
      return qkv.grad;
    };
    assertClose(gradient(fusedAttention), gradient(referenceAttention), 1e-5, "d qkv");
    // Without padding: a padding query's scores vanish in float32 next to the mask (lowest + s = lowest),
    // so there the analytic gradient (PyTorch's too) is not the finite difference, which is 0.
    gradcheck((x) => fusedAttention(x, 2, null, 3), [leaf([2, 5, 3 * WIDTH], 6)]);
    gradcheck(
      (q, cache) =>
        tv.attentionContext(
          tv.attentionSoftmax(tv.attentionScores(tv.packedHeads(q, HEADS), tv.stackedHeads(cache), 0.7)),
          tv.stackedHeads(cache),
        ),
      [leaf([1, 2, WIDTH], 7), leaf([1, HEADS, 4, DIM], 8)],
    );
  });

  it("record no graph under noGrad and leave their inputs unchanged", () => {
    const qkv = leaf([2, 5, 3 * WIDTH], 9);
    const before = qkv.data.slice();
    const out = tv.noGrad(() => fusedAttention(qkv, 8, null));
    assert.equal(out.requiresGrad, false);
    assert.deepEqual(qkv.data, before);
  });

  it("refuse heads, probabilities, masks and options that do not fit", () => {
    const qkv = tv.zeros([2, 5, 3 * WIDTH]);
    assert.throws(
      () => tv.packedHeads(qkv, HEADS, 2 * WIDTH, 2 * WIDTH),
      /columns \[24, 48\) are not inside the 36 columns/,
    );
    assert.throws(() => tv.packedHeads(qkv, 5, 0, WIDTH), /12 columns do not divide into 5 heads/);
    assert.throws(() => tv.packedHeads(tv.zeros([5, WIDTH]), HEADS), /x must be \[B, T, W\], got \[5, 12\]/);
    assert.throws(() => tv.stackedHeads(qkv), /x must be \[B, H, S, d\], got \[2, 5, 36\]/);
    const q = tv.packedHeads(qkv, HEADS, 0, WIDTH);
    assert.throws(
      () => tv.attentionScores(q, tv.packedHeads(qkv, 2, WIDTH, WIDTH)),
      /queries \(2 examples × 3 heads of 5×4\) and keys \(2 examples × 2 heads of 5×6\) must have the same/,
    );
    const scores = tv.attentionScores(q, tv.packedHeads(qkv, HEADS, WIDTH, WIDTH));
    assert.throws(
      () => tv.attentionSoftmax(scores, { divisr: 8 } as never),
      /unknown option "divisr".*did you mean "divisor"/,
    );
    assert.throws(() => tv.attentionSoftmax(scores, { divisor: 0 }), /divisor must be a finite non-zero number, got 0/);
    assert.throws(() => tv.attentionSoftmax(scores, { window: 0 }), /window must be a positive integer, got 0/);
    assert.throws(
      () => tv.attentionSoftmax(scores, { padding: tv.zeros([2, 5]) }),
      /padding must be a Tensor \[2, 1, 1, 5\] for scores \[2, 3, 5, 5\], got \[2, 5\]/,
    );
    assert.throws(() => tv.attentionSoftmax(tv.zeros([1, 1, 3, 2])), /more queries than keys/);
    assert.throws(
      () => tv.attentionContext(tv.zeros([2, 3, 5, 4]), tv.packedHeads(qkv, HEADS, 2 * WIDTH, WIDTH)),
      /probabilities \[2, 3, 5, 4\] do not match values \(2 examples × 3 heads of 5×4\); expected \[2, 3, T, 5\]/,
    );
  });
});

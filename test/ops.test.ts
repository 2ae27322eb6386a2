/** Forward values of the ops against hand computations, plus autograd mechanics and errors. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tv from "../src/index.js";

const { tensor, intTensor } = tv;

function close(actual: tv.Tensor | ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  const a = actual instanceof tv.Tensor ? actual.data : actual;
  assert.equal(a.length, expected.length, `length ${a.length} vs ${expected.length}`);
  for (let i = 0; i < a.length; i++) {
    const ok =
      (Number.isNaN(expected[i]) && Number.isNaN(a[i])) ||
      a[i] === expected[i] ||
      Math.abs(a[i] - expected[i]) <= tol * Math.max(1, Math.abs(expected[i]));
    assert.ok(ok, `element ${i}: ${a[i]} vs ${expected[i]}`);
  }
}

describe("creation", () => {
  it("infers shapes from nested arrays and rejects ragged ones", () => {
    const t = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.deepEqual(t.toArray(), [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
    assert.throws(() => tensor([1, 2, 3], [2, 2]), /do not fill shape \[2, 2\]/);
  });
  it("copies typed arrays it is given", () => {
    const src = new Float32Array([1, 2]);
    const t = tensor(src, [2]);
    src[0] = 9;
    assert.equal(t.data[0], 1);
  });
  it("arange, full, zeros, ones", () => {
    close(tv.arange(5), [0, 1, 2, 3, 4]);
    close(tv.arange(1, 2, 0.25), [1, 1.25, 1.5, 1.75]);
    close(tv.full([2], 7), [7, 7]);
    assert.deepEqual(tv.zeros([2, 0]).shape, [2, 0]);
    close(tv.ones([3]), [1, 1, 1]);
  });
  it("seeded draws repeat and have the right moments", () => {
    const a = tv.randn([20000], { generator: new tv.Generator(7) });
    const b = tv.randn([20000], { generator: new tv.Generator(7) });
    assert.deepEqual(a.data, b.data);
    const m = tv.mean(a).item();
    const v = tv.variance(a).item();
    assert.ok(Math.abs(m) < 0.03 && Math.abs(v - 1) < 0.04, `mean ${m}, var ${v}`);
    const u = tv.rand([20000], { generator: new tv.Generator(8), low: -1, high: 3 });
    assert.ok(u.data.every((x) => x >= -1 && x < 3));
    assert.ok(Math.abs(tv.mean(u).item() - 1) < 0.05);
    assert.notDeepEqual(
      tv.randn([4], { generator: new tv.Generator(1) }).data,
      tv.randn([4], { generator: new tv.Generator(2) }).data,
    );
  });
});

describe("elementwise", () => {
  it("broadcasts like NumPy", () => {
    const a = tensor([[1], [2]]);
    const b = tensor([10, 20, 30]);
    const c = tv.add(a, b);
    assert.deepEqual(c.shape, [2, 3]);
    close(c, [11, 21, 31, 12, 22, 32]);
    close(tv.sub(b, 1), [9, 19, 29]);
    close(tv.div(tensor([1, 2]), tensor([4])), [0.25, 0.5]);
    close(tv.pow(tensor([2, 3]), tensor([[2], [3]])), [4, 9, 8, 27]);
    assert.throws(() => tv.add(tensor([1, 2]), tensor([1, 2, 3])), /do not broadcast/);
  });
  it("activations at known points", () => {
    const x = tensor([-1, 0, 1, 2]);
    close(tv.gelu(x, "none"), [-0.15865525393145707, 0, 0.8413447460685429, 1.9544997361036416]);
    close(tv.gelu(x, "tanh"), [-0.15880800939172324, 0, 0.8411919906082768, 1.954597694087775]);
    close(tv.silu(x), [-0.2689414213699951, 0, 0.7310585786300049, 1.7615941559557646]);
    close(tv.sigmoid(x), [0.2689414213699951, 0.5, 0.7310585786300049, 0.8807970779778823]);
    close(tv.tanh(x), [-0.7615941559557649, 0, 0.7615941559557649, 0.9640275800758169]);
    close(tv.relu(x), [0, 0, 1, 2]);
    close(tv.clamp(x, -0.5, 1.5), [-0.5, 0, 1, 1.5]);
    close(tv.rsqrt(tensor([4, 0.25])), [0.5, 2]);
    close(tv.maximum(x, 0.5), [0.5, 0.5, 1, 2]);
    close(tv.where(tensor([1, 0, 0, 1]), x, -9), [-1, -9, -9, 2]);
  });
});

describe("reductions", () => {
  const x = tensor([
    [1, 5, 3],
    [4, 2, 6],
  ]);
  it("sum, mean, variance over axes", () => {
    close(tv.sum(x), [21]);
    close(tv.sum(x, 0), [5, 7, 9]);
    assert.deepEqual(tv.sum(x, 1, true).shape, [2, 1]);
    close(tv.mean(x, 1), [3, 4]);
    close(tv.variance(x, 1), [4, 4]);
    close(tv.variance(x, 1, { correction: 0 }), [8 / 3, 8 / 3]);
  });
  it("max, argmax, logsumexp", () => {
    close(tv.max(x, 1), [5, 6]);
    assert.deepEqual([...tv.argmax(x, 0).data], [1, 0, 1]);
    assert.deepEqual([...tv.argmax(tensor([3, 7, 7]), 0).data], [1]);
    close(tv.logsumexp(x, 1), [
      Math.log(Math.exp(1) + Math.exp(5) + Math.exp(3)),
      Math.log(Math.exp(4) + Math.exp(2) + Math.exp(6)),
    ]);
    close(tv.logsumexp(tensor([-Infinity, 0]), 0), [0]);
    close(tv.logsumexp(tensor([1000, 1000]), 0), [1000 + Math.LN2]);
  });
});

describe("shape ops", () => {
  const x = tv.arange(24).reshape([2, 3, 4]);
  it("reshape with an inferred dim, permute, transpose", () => {
    assert.deepEqual(tv.reshape(x, [4, -1]).shape, [4, 6]);
    assert.throws(() => tv.reshape(x, [5, -1]), /cannot reshape/);
    const p = tv.permute(x, [2, 0, 1]);
    assert.deepEqual(p.shape, [4, 2, 3]);
    assert.equal(p.data[1 * 6 + 1 * 3 + 2], x.data[1 * 12 + 2 * 4 + 1]);
    const t = tv.transpose(
      tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]),
    );
    close(t, [1, 4, 2, 5, 3, 6]);
  });
  it("slice with negative bounds, split, concat, stack", () => {
    close(tv.slice(tensor([0, 1, 2, 3, 4]), 0, 1, -1), [1, 2, 3]);
    close(
      tv.slice(
        tensor([
          [0, 1, 2],
          [3, 4, 5],
        ]),
        1,
        -2,
      ),
      [1, 2, 4, 5],
    );
    const parts = tv.split(tv.arange(5), 2);
    assert.deepEqual(
      parts.map((p) => [...p.data]),
      [[0, 1], [2, 3], [4]],
    );
    close(
      tv.concat(
        [
          tensor([[1], [2]]),
          tensor([
            [3, 4],
            [5, 6],
          ]),
        ],
        1,
      ),
      [1, 3, 4, 2, 5, 6],
    );
    const s = tv.stack([tensor([1, 2]), tensor([3, 4])], 1);
    assert.deepEqual(s.shape, [2, 2]);
    close(s, [1, 3, 2, 4]);
    assert.throws(() => tv.concat([tensor([[1, 2]]), tensor([[1, 2, 3]])], 0), /incompatible/);
  });
  it("expand, squeeze, unsqueeze", () => {
    close(tv.expand(tensor([[1], [2]]), [2, 3]), [1, 1, 1, 2, 2, 2]);
    close(tv.expand(tensor([1, 2]), [2, -1]), [1, 2, 1, 2]);
    assert.deepEqual(tv.unsqueeze(tensor([1, 2]), 1).shape, [2, 1]);
    assert.deepEqual(tv.squeeze(tv.zeros([1, 2, 1])).shape, [2]);
    assert.throws(() => tv.squeeze(tv.zeros([2]), 0), /expected 1/);
  });
});

describe("indexing", () => {
  const x = tv.arange(12).reshape([2, 3, 2]);
  it("indexSelect and embedding", () => {
    close(tv.indexSelect(x, 1, [2, 0]), [4, 5, 0, 1, 10, 11, 6, 7]);
    const e = tv.embedding(tv.arange(6).reshape([3, 2]), intTensor([[2, 0]]));
    assert.deepEqual(e.shape, [1, 2, 2]);
    close(e, [4, 5, 0, 1]);
    assert.throws(() => tv.indexSelect(x, 1, [3]), /index 3 is out of range.*0\.\.2/);
  });
  it("gatherAt reads per-row positions; writeAt writes them out of place", () => {
    const g = tv.gatherAt(x, 1, intTensor([[1], [2]]));
    assert.deepEqual(g.shape, [2, 1, 2]);
    close(g, [2, 3, 10, 11]);
    const before = x.data.slice();
    const w = tv.writeAt(
      x,
      1,
      intTensor([
        [0, 0],
        [2, 1],
      ]),
      tensor([-1, -1, -2, -2, -3, -3, -4, -4], [2, 2, 2]),
    );
    close(w, [-2, -2, 2, 3, 4, 5, 6, 7, -4, -4, -3, -3]);
    assert.deepEqual(x.data, before);
    assert.throws(() => tv.gatherAt(x, 1, intTensor([1, 2])), /expected \[2, K\]/);
    assert.throws(
      () => tv.writeAt(x, 1, intTensor([[0], [1]]), tv.zeros([2, 1, 3])),
      /do not match the indexed region \[2, 1, 2\]/,
    );
  });
});

describe("matrix products", () => {
  it("matmul of a hand-computed pair, batched and vector forms", () => {
    const a = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const b = tensor([
      [7, 8],
      [9, 10],
      [11, 12],
    ]);
    close(tv.matmul(a, b), [58, 64, 139, 154]);
    const batched = tv.matmul(tv.stack([a, tv.mul(a, 2)]), b);
    close(batched, [58, 64, 139, 154, 116, 128, 278, 308]);
    close(tv.matmul(tensor([1, 1, 1]), b), [27, 30]);
    assert.deepEqual(tv.matmul(a, tensor([1, 0, 1])).shape, [2]);
    assert.throws(() => tv.matmul(a, a), /do not chain/);
  });
  it("linear in both layouts", () => {
    const x = tensor([[1, 2]]);
    const w = tensor([
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    close(tv.linear(x, w, tensor([0.5, 0.5, 0.5])), [1.5, 2.5, 3.5]);
    close(tv.linear(x, tv.transpose(w), null, "in_out"), [1, 2, 3]);
    assert.throws(() => tv.linear(tensor([[1, 2, 3]]), w), /does not end in 2/);
  });
});

describe("network ops", () => {
  it("softmax and logSoftmax, with -Infinity masks", () => {
    const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
    const z = e[0] + e[1] + e[2];
    close(
      tv.softmax(tensor([1, 2, 3])),
      e.map((v) => v / z),
    );
    close(tv.softmax(tensor([0, -Infinity])), [1, 0]);
    close(
      tv.logSoftmax(tensor([1, 2, 3])),
      [1, 2, 3].map((v) => v - Math.log(z)),
    );
    close(
      tv.softmax(
        tensor([
          [1, 1],
          [3, 1],
        ]),
        0,
      ),
      [0.11920292202211755, 0.5, 0.8807970779778823, 0.5],
    );
  });
  it("layerNorm and rmsNorm", () => {
    const x = tensor([[1, 2, 3, 6]]);
    const sd = Math.sqrt((4 + 1 + 0 + 9) / 4 + 1e-5);
    close(tv.layerNorm(x), [-2 / sd, -1 / sd, 0, 3 / sd], 1e-5);
    close(tv.layerNorm(x, tensor([2, 2, 2, 2]), tensor([1, 1, 1, 1])), [1 - 4 / sd, 1 - 2 / sd, 1, 1 + 6 / sd], 1e-5);
    const rms = Math.sqrt((1 + 4 + 9 + 36) / 4 + 1e-6);
    close(tv.rmsNorm(x), [1 / rms, 2 / rms, 3 / rms, 6 / rms], 1e-5);
  });
  it("crossEntropy matches -log softmax at the targets", () => {
    const logits = tensor([
      [1, 2, 3],
      [1, 1, 1],
    ]);
    const lse0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    close(tv.crossEntropy(logits, intTensor([0, 2])), [(lse0 - 1 + Math.log(3)) / 2]);
    close(tv.crossEntropy(logits, intTensor([0, -100])), [lse0 - 1]);
    close(tv.crossEntropy(logits, intTensor([2, 1]), { reduction: "none" }), [lse0 - 3, Math.log(3)]);
    assert.throws(() => tv.crossEntropy(logits, intTensor([3, 0])), /target 3 is out of range for 3 classes/);
  });
});

describe("matrix functions", () => {
  it("matrixExp of a rotation generator is the rotation", () => {
    const t = 2.5;
    close(
      tv.matrixExp(
        tensor([
          [0, -t],
          [t, 0],
        ]),
      ),
      [Math.cos(t), -Math.sin(t), Math.sin(t), Math.cos(t)],
      1e-5,
    );
    close(
      tv.matrixExp(
        tensor([
          [1, 0],
          [0, -2],
        ]),
      ),
      [Math.E, 0, 0, Math.exp(-2)],
      1e-5,
    );
    close(tv.matrixExp(tv.zeros([3, 3])), [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  });
  it("matrixExp of a skew-symmetric matrix is orthogonal", () => {
    const a = tv.randn([6, 6], { generator: new tv.Generator(3) });
    const skew = tv.sub(a, tv.transpose(a));
    const q = tv.matrixExp(skew);
    close(tv.matmul(tv.transpose(q), q), tv.matrixExp(tv.zeros([6, 6])).data, 1e-5);
  });
  it("qr reconstructs its input with orthonormal Q and triangular R", () => {
    const a = tv.randn([7, 4], { generator: new tv.Generator(4) });
    const { q, r } = tv.qr(a);
    close(tv.matmul(q, r), a.data, 1e-5);
    const eye = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
    close(tv.matmul(tv.transpose(q), q), eye, 1e-5);
    for (let i = 0; i < 4; i++) for (let j = 0; j < i; j++) assert.equal(r.data[i * 4 + j], 0);
  });
  it("qr mode complete gives an orthogonal m×m Q extending the reduced one, and R m×n", () => {
    const a = tv.randn([5, 2], { generator: new tv.Generator(4) });
    const reduced = tv.qr(a);
    const { q, r } = tv.qr(a, { mode: "complete" });
    assert.deepEqual(
      [q.shape, r.shape],
      [
        [5, 5],
        [5, 2],
      ],
    );
    close(tv.matmul(q, r), a.data, 1e-5);
    close(tv.matmul(tv.transpose(q), q), tv.matrixExp(tv.zeros([5, 5])).data, 1e-5);
    assert.deepEqual([...tv.slice(q, 1, 0, 2).data], [...reduced.q.data]);
    assert.deepEqual([...tv.slice(r, 0, 0, 2).data], [...reduced.r.data]);
    assert.ok(tv.slice(r, 0, 2).data.every((v) => v === 0));
    assert.throws(
      () => tv.qr(a, { mode: "full" as "complete" }),
      /qr: mode must be "reduced" or "complete", got "full"/,
    );
  });
  it("orthogonal gives orthonormal rows or columns", () => {
    const wide = tv.orthogonal(3, 8, new tv.Generator(5));
    assert.deepEqual(wide.shape, [3, 8]);
    close(tv.matmul(wide, tv.transpose(wide)), [1, 0, 0, 0, 1, 0, 0, 0, 1], 1e-5);
    const tall = tv.orthogonal(8, 3, new tv.Generator(5));
    close(tv.matmul(tv.transpose(tall), tall), [1, 0, 0, 0, 1, 0, 0, 0, 1], 1e-5);
  });
});

describe("autograd mechanics", () => {
  it("accumulates through shared subexpressions and across backward calls", () => {
    const x = tensor([2]).requireGrad();
    const y = tv.mul(x, x);
    const z = tv.add(tv.mul(y, y), y);
    z.backward();
    close(x.grad!, [4 * 8 + 4]);
    tv.mul(x, 3).backward();
    close(x.grad!, [39]);
  });
  it("records nothing under noGrad and skips inputs that need no gradient", () => {
    const x = tensor([1, 2]).requireGrad();
    const y = tv.noGrad(() => tv.mul(x, 2));
    assert.equal(y.requiresGrad, false);
    assert.equal(y.node, null);
    const c = tensor([3, 4]);
    const z = tv.sum(tv.mul(x, c));
    z.backward();
    close(x.grad!, [3, 4]);
    assert.equal(c.grad, null);
  });
  it("frees the graph after backward unless asked to retain it", () => {
    const x = tensor([1]).requireGrad();
    const y = tv.exp(x);
    const z = tv.mul(y, 2);
    z.backward(undefined, { retainGraph: true });
    z.backward();
    close(x.grad!, [4 * Math.E], 1e-6);
    assert.throws(() => z.backward(), /already used by a backward\(\) call/);
  });
  it("needs an explicit gradient for non-scalars and a matching shape", () => {
    const x = tensor([1, 2]).requireGrad();
    const y = tv.mul(x, 2);
    assert.throws(() => y.backward(), /gradient argument is needed/);
    assert.throws(() => y.backward(tensor([1])), /does not match/);
    assert.throws(() => tensor([1]).backward(), /does not require a gradient/);
  });
  it("survives a deep chain without recursion limits", () => {
    const x = tensor([1]).requireGrad();
    let y = x;
    for (let i = 0; i < 20000; i++) y = tv.add(y, 0);
    y.backward();
    close(x.grad!, [1]);
  });
});

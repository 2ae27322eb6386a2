/** Interventions: the swap, the rotation parametrisations, every built-in class, gradients. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as tv from "../src/index.js";
import { Tensor } from "../src/index.js";
import { doInterventionBySwap, featureSelection } from "../src/intervene/swap.js";
import { LowRankRotateLayer, RotateLayer } from "../src/intervene/rotation.js";
import type { Intervention } from "../src/intervene/intervention.js";
import {
  AdditionIntervention,
  AutoencoderIntervention,
  BoundlessRotatedSpaceIntervention,
  CollectIntervention,
  ConstantSourceIntervention,
  DEFAULT_NOISE_LEVEL,
  INTERVENTION_TYPES,
  JumpReLUAutoencoderIntervention,
  LambdaIntervention,
  LowRankRotatedSpaceIntervention,
  NoiseIntervention,
  PCARotatedSpaceIntervention,
  RotatedSpaceIntervention,
  SigmoidMaskIntervention,
  SigmoidMaskRotatedSpaceIntervention,
  SkipIntervention,
  SubtractionIntervention,
  VanillaIntervention,
  ZeroIntervention,
  parseInterventionType,
  pyveneClassString,
  type InterventionClass,
} from "../src/intervene/interventions/index.js";
import { gradcheck, leaf } from "./support/gradcheck.js";
import { fixtureFolder } from "./support/fixtures.js";

const { tensor, arange } = tv;

// pyvene's unit-test inputs (§4.10).
const base = () => arange(36).reshape([2, 3, 6]);
const source = () => arange(36, 72).reshape([2, 3, 6]);
const PARTITION = [
  [0, 2],
  [2, 4],
  [4, 6],
];

function run(iv: Intervention, b: Tensor, s: Tensor | null, subspaces: unknown = null): Tensor {
  return iv.call(b, { source: s, subspaces });
}

function close(actual: Tensor | ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5, what = "value"): void {
  const a = actual instanceof Tensor ? actual.data : actual;
  assert.equal(a.length, expected.length, `${what}: ${a.length} values, expected ${expected.length}`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - expected[i]) <= tol, `${what} [${i}]: ${a[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

/** Row-major float64 product of a (r×k) and b (k×c). */
function mm(a: ArrayLike<number>, b: ArrayLike<number>, r: number, k: number, c: number): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++)
    for (let j = 0; j < c; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t] * b[t * c + j];
      out[i * c + j] = s;
    }
  return out;
}

function transposed(a: ArrayLike<number>, r: number, c: number): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j];
  return out;
}

function assertOrthonormalColumns(w: Tensor, tol = 1e-5): void {
  const [n, m] = w.shape;
  close(mm(transposed(w.data, n, m), w.data, m, n, m), eye(m), tol, "WᵀW");
}

function eye(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

/** θ = −I plus seeded noise in the strictly lower triangle (the part that matters). */
function perturbTheta(theta: Tensor, seed: number, scale = 0.4): void {
  const [n, m] = theta.shape;
  const g = new tv.Generator(seed);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      if (i > j) theta.data[i * m + j] = scale * g.normal();
    }
}

describe("doInterventionBySwap: pyvene's goldens with tsvene's per-example semantics", () => {
  it("interchange_dim: the first k features of every row", () => {
    const out = doInterventionBySwap(base(), source(), "interchange", { interchangeDim: 2 });
    assert.deepEqual(out.toArray(), [
      [
        [36, 37, 2, 3, 4, 5],
        [42, 43, 8, 9, 10, 11],
        [48, 49, 14, 15, 16, 17],
      ],
      [
        [54, 55, 20, 21, 22, 23],
        [60, 61, 26, 27, 28, 29],
        [66, 67, 32, 33, 34, 35],
      ],
    ]);
    // Through the class, with pyvene's constructor argument.
    assert.deepEqual(run(new VanillaIntervention({ embedDim: 2 }), base(), source()).toArray(), out.toArray());
  });

  it("raw per-example subspaces apply to every position of their own example", () => {
    const out = run(new VanillaIntervention(), base(), source(), [
      [1, 0],
      [0, 2],
    ]);
    assert.deepEqual(out.toArray(), [
      [
        [36, 37, 2, 3, 4, 5],
        [42, 43, 8, 9, 10, 11],
        [48, 49, 14, 15, 16, 17],
      ],
      [
        [54, 19, 56, 21, 22, 23],
        [60, 25, 62, 27, 28, 29],
        [66, 31, 68, 33, 34, 35],
      ],
    ]);
  });

  it("pyvene's three rows for a batch of two is an error here (pyvene pairs rows with positions)", () => {
    assert.throws(
      () =>
        run(new VanillaIntervention(), base(), source(), [
          [1, 0],
          [0, 1],
          [1, 2],
        ]),
      /subspaces has 3 per-example lists but the base batch has 2 examples/,
    );
  });

  it("partition blocks concatenated per example", () => {
    const iv = new VanillaIntervention({ subspacePartition: PARTITION });
    const out = run(iv, base(), source(), [
      [1, 0],
      [1, 2],
    ]);
    assert.deepEqual(out.toArray(), [
      [
        [36, 37, 38, 39, 4, 5],
        [42, 43, 44, 45, 10, 11],
        [48, 49, 50, 51, 16, 17],
      ],
      [
        [18, 19, 56, 57, 58, 59],
        [24, 25, 62, 63, 64, 65],
        [30, 31, 68, 69, 70, 71],
      ],
    ]);
  });

  it("a (d)-element source broadcasts to every row", () => {
    const iv = new VanillaIntervention({ subspacePartition: PARTITION });
    const out = run(iv, base(), arange(36, 42), [
      [1, 0],
      [1, 2],
    ]);
    assert.deepEqual(out.toArray(), [
      [
        [36, 37, 38, 39, 4, 5],
        [36, 37, 38, 39, 10, 11],
        [36, 37, 38, 39, 16, 17],
      ],
      [
        [18, 19, 38, 39, 40, 41],
        [24, 25, 38, 39, 40, 41],
        [30, 31, 38, 39, 40, 41],
      ],
    ]);
    // A (1, 6) source has 6 elements too (pyvene's dead "negative" test): it broadcasts.
    assert.deepEqual(
      run(iv, base(), arange(36, 42).reshape([1, 6]), [
        [1, 0],
        [1, 2],
      ]).toArray(),
      out.toArray(),
    );
  });

  it("one list for all examples (pyvene's fast path) is the same for everyone", () => {
    const iv = new VanillaIntervention({ subspacePartition: PARTITION });
    const expected = [
      [
        [36, 37, 38, 39, 4, 5],
        [36, 37, 38, 39, 10, 11],
        [36, 37, 38, 39, 16, 17],
      ],
      [
        [36, 37, 38, 39, 22, 23],
        [36, 37, 38, 39, 28, 29],
        [36, 37, 38, 39, 34, 35],
      ],
    ];
    assert.deepEqual(run(iv, base(), arange(36, 42), [1, 0]).toArray(), expected);
    assert.deepEqual(run(iv, base(), arange(36, 42), [[1, 0]]).toArray(), expected);
    assert.deepEqual(
      run(iv, base(), arange(36, 42), [
        [1, 0],
        [1, 0],
      ]).toArray(),
      expected,
    );
  });

  it("equal-length lists on a (b, 1, d) base do not swap the union (pyvene's quirk, §11.1)", () => {
    const b = arange(18).reshape([3, 1, 6]);
    const s = arange(18, 36).reshape([3, 1, 6]);
    assert.deepEqual(run(new VanillaIntervention(), b, s, [[0], [2], [4]]).toArray(), [
      [[18, 1, 2, 3, 4, 5]],
      [[6, 7, 26, 9, 10, 11]],
      [[12, 13, 14, 15, 34, 17]],
    ]);
  });

  it("2-D bases and ragged per-example lists", () => {
    const b = arange(12).reshape([2, 6]);
    const s = arange(12, 24).reshape([2, 6]);
    assert.deepEqual(doInterventionBySwap(b, s, "interchange", { subspaces: [[5], [0, 1, 2]] }).toArray(), [
      [0, 1, 2, 3, 4, 17],
      [18, 19, 20, 9, 10, 11],
    ]);
  });

  it("add and subtract", () => {
    assert.deepEqual((run(new AdditionIntervention({ embedDim: 2 }), base(), source()).toArray() as number[][][])[1], [
      [18 + 54, 19 + 55, 20, 21, 22, 23],
      [24 + 60, 25 + 61, 26, 27, 28, 29],
      [30 + 66, 31 + 67, 32, 33, 34, 35],
    ]);
    assert.deepEqual(
      (run(new SubtractionIntervention(), base(), source(), [[0], [5]]).toArray() as number[][][])[1][2],
      [30, 31, 32, 33, 34, 35 - 71],
    );
  });

  it("collect: per-example selection, pyvene's shared golden, and its errors", () => {
    const iv = new CollectIntervention({ subspacePartition: PARTITION });
    assert.deepEqual(
      run(iv, base(), null, [
        [1, 0],
        [1, 2],
      ]).toArray(),
      [
        [
          [2, 3, 0, 1],
          [8, 9, 6, 7],
          [14, 15, 12, 13],
        ],
        [
          [20, 21, 22, 23],
          [26, 27, 28, 29],
          [32, 33, 34, 35],
        ],
      ],
    );
    assert.deepEqual(run(iv, base(), null, [1, 0]).toArray(), [
      [
        [2, 3, 0, 1],
        [8, 9, 6, 7],
        [14, 15, 12, 13],
      ],
      [
        [20, 21, 18, 19],
        [26, 27, 24, 25],
        [32, 33, 30, 31],
      ],
    ]);
    assert.deepEqual((run(new CollectIntervention({ embedDim: 2 }), base(), null).toArray() as number[][][])[0], [
      [0, 1],
      [6, 7],
      [12, 13],
    ]);
    assert.throws(
      () => run(iv, base(), null, [[1, 0], [2]]),
      /same number of features.*example 0 selects 4, example 1 selects 2/,
    );
    assert.throws(() => run(iv, base(), source(), [[0], [1]]), /CollectIntervention takes no source/);
    assert.throws(() => doInterventionBySwap(base(), source(), "collect"), /collect takes no source/);
  });

  it("leaves unselected features bit-exact and never changes the caller's tensors", () => {
    const b = tv.randn([2, 3, 5], { generator: new tv.Generator(3) });
    const s = tv.randn([2, 3, 5], { generator: new tv.Generator(4) });
    const before = [b.data.slice(), s.data.slice()];
    for (const mode of ["interchange", "add", "subtract"] as const) {
      const out = doInterventionBySwap(b, s, mode, { subspaces: [[1, 3], [0]] });
      for (let i = 0; i < out.size; i++) {
        const example = Math.floor(i / 15);
        const feature = i % 5;
        const selected = example === 0 ? feature === 1 || feature === 3 : feature === 0;
        const expected = !selected
          ? b.data[i]
          : mode === "interchange"
            ? s.data[i]
            : mode === "add"
              ? Math.fround(b.data[i] + s.data[i])
              : Math.fround(b.data[i] - s.data[i]);
        assert.ok(Object.is(out.data[i], expected), `${mode} [${i}]`);
      }
    }
    assert.deepEqual(b.data, before[0]);
    assert.deepEqual(s.data, before[1]);
  });

  it("bad inputs give clear errors", () => {
    assert.throws(
      () => doInterventionBySwap(base(), arange(12), "interchange"),
      /source with shape \[12\] cannot be broadcasted into base with shape \[2, 3, 6\]\./,
    );
    assert.throws(
      () => run(new VanillaIntervention(), base(), source(), [1, 6]),
      /feature index 6 is out of range for a last axis of width 6 \(expected 0\.\.5\)/,
    );
    assert.throws(
      () => run(new VanillaIntervention({ subspacePartition: PARTITION }), base(), source(), [[0], [3]]),
      /subspace id 3 \(example 1\) is out of range for a subspace partition of 3 blocks \(expected 0\.\.2\)/,
    );
    assert.throws(
      () =>
        run(
          new VanillaIntervention({
            subspacePartition: [
              [0, 2],
              [5, 9],
            ],
          }),
          base(),
          source(),
          [0],
        ),
      /subspace_partition block 1 feature 6 is out of range/,
    );
    assert.throws(
      () => doInterventionBySwap(base(), source(), "interchange", { interchangeDim: [0, 7] }),
      /interchangeDim index 7 is out of range/,
    );
    assert.throws(
      () => doInterventionBySwap(base(), source(), "interchange", { subspaces: [[0], "x"] }),
      /subspaces must be one id/,
    );
    assert.throws(() => doInterventionBySwap(base(), source(), "swap" as never), /mode must be one of/);
    assert.throws(
      () => doInterventionBySwap(arange(6), arange(6), "interchange", { subspaces: [[0], [1]] }),
      /need a base with a batch axis/,
    );
    assert.throws(
      () => run(new VanillaIntervention(), base(), null),
      /VanillaIntervention: no source was given and no sourceRepresentation is set/,
    );
  });

  it("a subspace selection resolves partitions in the given order", () => {
    assert.deepEqual(
      featureSelection(6, 2, {
        subspaces: [[2, 0], [1]],
        subspacePartition: [
          [4, 5],
          [0, 1],
          [2, 3],
        ],
      }),
      {
        kind: "perExample",
        ids: [
          [2, 3, 4, 5],
          [0, 1],
        ],
      },
    );
    assert.deepEqual(featureSelection(6, 2, { interchangeDim: 9 }), { kind: "shared", ids: [0, 1, 2, 3, 4, 5] });
  });
});

describe("rotation parametrisations", () => {
  it("RotateLayer: pyvene's state-dict names, W == the orthogonal init at registration", () => {
    const layer = new RotateLayer(8, { generator: new tv.Generator(7) });
    assert.deepEqual(
      layer.namedParameters().map(([k]) => k),
      ["parametrizations.weight.original", "parametrizations.weight.0.base"],
    );
    const init = tv.orthogonal(8, 8, new tv.Generator(7));
    assert.deepEqual(layer.weight().data, init.data);
    assert.deepEqual(
      Array.from(layer.original.data),
      Array.from(eye(8), (v) => (v === 0 ? 0 : -v)),
      "θ = −I",
    );
    assert.equal(layer.original.requiresGrad, true);
    assert.equal(layer.base.requiresGrad, false);
  });

  it("RotateLayer: W stays orthogonal for any θ, and equals the closed form for 2×2", () => {
    const layer = new RotateLayer(6, { generator: new tv.Generator(1) });
    perturbTheta(layer.original, 2, 0.8);
    assertOrthonormalColumns(layer.weight(), 1e-5);
    const two = new RotateLayer(2);
    two.setWeight(
      tensor([
        [1, 0],
        [0, 1],
      ]),
    );
    two.original.data[2] = 0.7; // θ[1][0] = a ⇒ A = [[0, −a], [a, 0]]
    two.original.data[1] = 5; // the upper triangle is ignored
    two.original.data[0] = 3; // and so is the diagonal
    close(two.weight(), [Math.cos(0.7), -Math.sin(0.7), Math.sin(0.7), Math.cos(0.7)], 1e-6, "expm");
  });

  it("LowRankRotateLayer: W == init, orthonormal columns, and the Householder closed form for 2×1", () => {
    const layer = new LowRankRotateLayer(8, 3, { generator: new tv.Generator(5) });
    assert.deepEqual(
      layer.namedParameters().map(([k]) => k),
      ["parametrizations.weight.original", "parametrizations.weight.0.base"],
    );
    assert.deepEqual(layer.original.shape, [8, 3]);
    assert.deepEqual(layer.base.shape, [8, 8]);
    assert.deepEqual(layer.weight().data, tv.orthogonal(8, 3, new tv.Generator(5)).data);
    assertOrthonormalColumns(layer.base, 1e-6);
    perturbTheta(layer.original, 6, 0.7);
    assertOrthonormalColumns(layer.weight(), 1e-5);

    const small = new LowRankRotateLayer(2, 1);
    small.setWeight(tensor([[1], [0]]));
    assert.deepEqual(Array.from(small.base.data), [1, 0, 0, 1]);
    const b = small.base.data;
    const t = 0.6;
    small.original.data[1] = t; // A = [[0], [t]], τ = 2/(1+t²)
    const q = [(1 - t * t) / (1 + t * t), (2 * t) / (1 + t * t)];
    close(small.weight(), [b[0] * q[0] + b[1] * q[1], b[2] * q[0] + b[3] * q[1]], 1e-6, "householder");
    // The column sign is trunc(diag θ), as torch's .int(): −1.7 → −1, −0.5 → 0.
    small.original.data[0] = -1.7;
    close(small.weight(), [b[0] * q[0] + b[1] * q[1], b[2] * q[0] + b[3] * q[1]], 1e-6, "trunc(-1.7)");
    small.original.data[0] = -0.5;
    close(small.weight(), [0, 0], 0, "trunc(-0.5)");
  });

  it("setWeight round trips exactly and resets θ to −I", () => {
    const w8 = tv.orthogonal(8, 8, new tv.Generator(11));
    const square = new RotateLayer(8);
    perturbTheta(square.original, 3);
    square.setWeight(w8);
    assert.deepEqual(square.weight().data, w8.data);
    const negEye = eye(8).map((v) => (v === 0 ? 0 : -v));
    assert.deepEqual(Array.from(square.original.data), Array.from(negEye));

    const w3 = tv.orthogonal(8, 3, new tv.Generator(12));
    const tall = new LowRankRotateLayer(8, 3);
    const theta = tall.original;
    perturbTheta(theta, 4);
    tall.setWeight(w3);
    assert.equal(tall.original, theta, "the parameter object is kept");
    assert.deepEqual(tall.weight().data, w3.data);
    assertOrthonormalColumns(tall.base, 1e-6);
    for (let i = 0; i < 8; i++) for (let j = 0; j < 3; j++) assert.equal(tall.base.data[i * 8 + j], w3.data[i * 3 + j]);
    // Also exact with a gradient being recorded.
    assert.deepEqual(tall.weight().data, w3.data);
    assert.ok(tall.weight().requiresGrad);
  });

  it("setWeight rejects wrong shapes and non-orthonormal matrices; B stays frozen", () => {
    const layer = new LowRankRotateLayer(4, 2);
    assert.throws(() => layer.setWeight(tv.zeros([4, 3])), /expected a 4×2 matrix, got shape \[4, 3\]/);
    assert.throws(() => layer.setWeight(tv.ones([4, 2])), /not orthonormal \(max \|WᵀW − I\| = 4\.00e\+0/);
    assert.throws(() => new LowRankRotateLayer(2, 3), /1 ≤ m ≤ n/);
    layer.requireGrad(true);
    assert.equal(layer.base.requiresGrad, false);
    assert.equal(layer.original.requiresGrad, true);
  });

  it("gradients w.r.t. θ (square, matrix exponential)", () => {
    const layer = new RotateLayer(4, { generator: new tv.Generator(21) });
    perturbTheta(layer.original, 22, 0.5);
    gradcheck(() => layer.weight(), [layer.original]);
    // Only the strictly lower triangle gets a non-zero gradient.
    const g = layer.original.grad!.data;
    for (let i = 0; i < 4; i++)
      for (let j = i; j < 4; j++) assert.ok(g[i * 4 + j] === 0, `θ[${i}][${j}] gradient ${g[i * 4 + j]}`);
  });

  it("gradients w.r.t. θ (tall, Householder)", () => {
    const layer = new LowRankRotateLayer(5, 2, { generator: new tv.Generator(23) });
    perturbTheta(layer.original, 24, 0.5);
    for (let j = 0; j < 2; j++) layer.original.data[j * 2 + j] = -1.5; // trunc = −1, away from the cast's steps
    gradcheck(() => layer.weight(), [layer.original]);
  });
});

describe("intervention classes: formulas", () => {
  it("Vanilla / Addition / Subtraction with a constant source representation", () => {
    const rep = arange(100, 106);
    const v = new VanillaIntervention({ embedDim: 2, sourceRepresentation: rep });
    assert.equal(v.sourceConstant, true);
    assert.deepEqual((run(v, base(), null).toArray() as number[][][])[0][1], [100, 101, 8, 9, 10, 11]);
    assert.deepEqual(
      (
        run(new AdditionIntervention({ sourceRepresentation: rep }), base(), null, [[0], [5]]).toArray() as number[][][]
      )[1][0],
      [18, 19, 20, 21, 22, 128],
    );
    assert.deepEqual(
      (
        run(new SubtractionIntervention({ sourceRepresentation: rep }), base(), null, [3]).toArray() as number[][][]
      )[0][0],
      [0, 1, 2, 3 - 103, 4, 5],
    );
    assert.equal(new VanillaIntervention().sourceConstant, false);
  });

  it("Zero, Skip and ConstantSource", () => {
    assert.deepEqual(
      (
        run(new ZeroIntervention({ subspacePartition: PARTITION }), base(), null, [[2], [0]]).toArray() as number[][][]
      )[1][0],
      [0, 0, 20, 21, 22, 23],
    );
    assert.deepEqual(
      (run(new ZeroIntervention({ embedDim: 1 }), base(), null).toArray() as number[][][])[0][2],
      [0, 13, 14, 15, 16, 17],
    );
    assert.deepEqual(
      run(new SkipIntervention(), base(), source(), [[0], [1]]).toArray(),
      run(new VanillaIntervention(), base(), source(), [[0], [1]]).toArray(),
    );
    assert.throws(() => run(new SkipIntervention(), base(), null), /SkipIntervention: a source is required/);
    const cs = new ConstantSourceIntervention({ embedDim: 3 });
    assert.equal(cs.sourceConstant, true);
    assert.throws(() => run(cs, base(), null), /needs a sourceRepresentation/);
    cs.setSourceRepresentation(tv.full([6], -1));
    assert.deepEqual((run(cs, base(), null).toArray() as number[][][])[1][2], [-1, -1, -1, 33, 34, 35]);
  });

  it("Noise: x[..., :k] += noise · level, default level, deterministic default noise", () => {
    const noise = tensor([[[1, 2, 3, 4, 5, 6]]]);
    const iv = new NoiseIntervention({ embedDim: 6, noise, noiseLevel: 0.5 });
    iv.setInterchangeDim(4);
    assert.deepEqual((run(iv, base(), null).toArray() as number[][][])[1][1], [24.5, 26, 27.5, 29, 28, 29]);
    assert.equal(new NoiseIntervention({ embedDim: 6 }).noiseLevel.item(), Math.fround(DEFAULT_NOISE_LEVEL));
    const a = new NoiseIntervention({ embedDim: 6 });
    const b = new NoiseIntervention({ embedDim: 6 });
    assert.deepEqual(a.noise.shape, [1, 4, 6]);
    assert.deepEqual(a.noise.data, b.noise.data);
    const x = tv.zeros([2, 4, 6]);
    close(
      run(a, x, null),
      [...a.noise.data, ...a.noise.data].map((v) => Math.fround(v * Math.fround(DEFAULT_NOISE_LEVEL))),
      1e-7,
    );
    assert.throws(
      () => run(a, base(), null),
      /noise of shape \[1, 4, 6\] cannot be added to the first 6 features of base with shape \[2, 3, 6\]/,
    );
    assert.throws(() => new NoiseIntervention(), /needs embedDim/);
    assert.equal(a.sourceConstant, true);
    assert.equal(a.countParameters(), 0);
  });

  it("RotatedSpace: a full swap gives the source; a partial swap is rx[:k] := rs[:k] then ·Wᵀ", () => {
    const iv = new RotatedSpaceIntervention({ embedDim: 4, generator: new tv.Generator(31) });
    const x = tv.randn([3, 4], { generator: new tv.Generator(32) });
    const s = tv.randn([3, 4], { generator: new tv.Generator(33) });
    close(run(iv, x, s), s.data, 1e-5, "full swap");
    perturbTheta(iv.rotateLayer.original, 34);
    close(run(iv, x, s), s.data, 1e-5, "full swap after training");
    const w = iv.rotateLayer.weight().data;
    const rx = mm(x.data, w, 3, 4, 4);
    const rs = mm(s.data, w, 3, 4, 4);
    const mixed = rx.map((v, i) => (i % 4 < 2 ? rs[i] : v));
    iv.setInterchangeDim(2);
    close(run(iv, x, s), mm(mixed, transposed(w, 4, 4), 3, 4, 4), 1e-5, "first 2");
    // Per-example subspaces: example 0 block 0, example 1 block 1, example 2 none.
    const part = new RotatedSpaceIntervention({
      embedDim: 4,
      subspacePartition: [
        [0, 1],
        [1, 4],
      ],
    });
    part.loadStateDict(new Map(iv.namedParameters()));
    const mixed2 = rx.map((v, i) => {
      const e = Math.floor(i / 4);
      const f = i % 4;
      return (e === 0 && f === 0) || (e === 1 && f >= 1) ? rs[i] : v;
    });
    close(run(part, x, s, [[0], [1], []]), mm(mixed2, transposed(w, 4, 4), 3, 4, 4), 1e-5, "per example");
    assert.throws(
      () => run(iv, tv.zeros([2, 8]), tv.zeros([2, 8])),
      /have shape \[2, 8\], but the last axis must have width embedDim = 4/,
    );
  });

  it("LowRankRotatedSpace: x + WWᵀ(s − x), and per-example column subsets", () => {
    const iv = new LowRankRotatedSpaceIntervention({
      embedDim: 5,
      lowRankDimension: 2,
      generator: new tv.Generator(41),
    });
    perturbTheta(iv.rotateLayer.original, 42);
    const x = tv.randn([2, 5], { generator: new tv.Generator(43) });
    const s = tv.randn([2, 5], { generator: new tv.Generator(44) });
    const w = iv.rotateLayer.weight().data;
    const diff = mm(
      s.data.map((v, i) => v - x.data[i]),
      w,
      2,
      5,
      2,
    );
    const expected = (cols: (e: number) => number[]) => {
      const out = Float64Array.from(x.data);
      for (let e = 0; e < 2; e++)
        for (const j of cols(e)) for (let i = 0; i < 5; i++) out[e * 5 + i] += diff[e * 2 + j] * w[i * 2 + j];
      return out;
    };
    close(
      run(iv, x, s),
      expected(() => [0, 1]),
      1e-5,
      "no subspaces",
    );
    close(
      run(iv, x, s, [[1], [0]]),
      expected((e) => (e === 0 ? [1] : [0])),
      1e-5,
      "raw per example",
    );
    close(
      run(iv, x, s, [1]),
      expected(() => [1]),
      1e-5,
      "shared",
    );
    const part = new LowRankRotatedSpaceIntervention({
      embedDim: 5,
      lowRankDimension: 2,
      subspacePartition: [
        [0, 1],
        [1, 2],
      ],
    });
    part.rotateLayer.setWeight(iv.rotateLayer.weight().detach());
    close(
      run(part, x, s, [[1, 0], [1]]),
      expected((e) => (e === 0 ? [0, 1] : [1])),
      1e-5,
      "partition per example",
    );
    assert.throws(() => new LowRankRotatedSpaceIntervention({ embedDim: 5 }), /needs lowRankDimension/);
    assert.throws(
      () => run(iv, x, s, [[2], [0]]),
      /feature index 2 \(example 0\) is out of range for a last axis of width 2/,
    );
  });

  it("BoundlessRotatedSpace: pyvene's mask for n = 6 and its x + 3 golden", () => {
    const iv = new BoundlessRotatedSpaceIntervention({ embedDim: 6, generator: new tv.Generator(51) });
    const sigma = (v: number) => 1 / (1 + Math.exp(-v));
    const expectedMask = [0, 1, 2, 3, 4, 5].map((j) => sigma(j / 50) * sigma((3 - j) / 50));
    close(iv.boundaryMask(), expectedMask, 1e-6, "mask");
    close(iv.boundaryMask(), [0.2575, 0.2575, 0.2575, 0.2575, 0.2574, 0.2572], 5e-5, "pyvene's printed mask");
    const x = arange(12).reshape([2, 6]);
    const s = arange(12, 24).reshape([2, 6]);
    const out = run(iv, x, s);
    const w = iv.rotateLayer.weight().data;
    const rx = mm(x.data, w, 2, 6, 6);
    const rs = mm(s.data, w, 2, 6, 6);
    const mixed = rx.map((v, i) => (1 - expectedMask[i % 6]) * v + expectedMask[i % 6] * rs[i]);
    close(out, mm(mixed, transposed(w, 6, 6), 2, 6, 6), 1e-4, "formula");
    // pyvene's int64 golden truncates x + 3.09… to x + 3.
    assert.deepEqual(Array.from(out.data, Math.trunc), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    // The intended (n) mask broadcasts over (b, k, n) inputs with b > 1.
    const x3 = tv.randn([4, 2, 6], { generator: new tv.Generator(52) });
    const s3 = tv.randn([4, 2, 6], { generator: new tv.Generator(53) });
    const out3 = run(iv, x3, s3);
    assert.deepEqual(out3.shape, [4, 2, 6]);
    close(out3, run(iv, x3.reshape([8, 6]), s3.reshape([8, 6])).data, 1e-6, "3-D = rows");
    // Temperature and boundary setters keep the parameter objects.
    const t = iv.getTemperature();
    iv.setTemperature(2);
    assert.equal(iv.getTemperature(), t);
    assert.equal(t.item(), 2);
    iv.setInterventionBoundaries(0.25);
    assert.equal(iv.getBoundaryParameters().item(), 0.25);
    close(
      iv.boundaryMask(),
      [0, 1, 2, 3, 4, 5].map((j) => sigma(j / 2) * sigma((1.5 - j) / 2)),
      1e-6,
      "new mask",
    );
    assert.equal(iv.distributed, false);
    assert.throws(() => iv.setTemperature(tv.zeros([2])), /expected a finite number or a one-value tensor/);
  });

  it("SigmoidMask starts at 0.5 and its temperature gets no gradient", () => {
    const iv = new SigmoidMaskIntervention({ embedDim: 6 });
    const x = arange(12).reshape([2, 6]);
    const s = arange(12, 24).reshape([2, 6]);
    assert.deepEqual(run(iv, x, s).toArray(), [
      [6, 7, 8, 9, 10, 11],
      [12, 13, 14, 15, 16, 17],
    ]);
    iv.mask.data.set([-1, 0, 1, 2, -2, 0]);
    iv.setTemperature(0.5);
    const m = [-2, 0, 2, 4, -4, 0].map((v) => 1 / (1 + Math.exp(-v)));
    close(
      run(iv, x, s),
      Array.from(x.data, (v, i) => v + m[i % 6] * 12),
      1e-5,
    );
    run(iv, x, s).sum().backward();
    assert.equal(iv.temperature.grad, null);
    assert.ok(iv.mask.grad);
  });

  it("SigmoidMaskRotatedSpace starts at σ(2), which is x + σ(2)(s − x)", () => {
    const iv = new SigmoidMaskRotatedSpaceIntervention({ embedDim: 4, generator: new tv.Generator(61) });
    const x = tv.randn([2, 4], { generator: new tv.Generator(62) });
    const s = tv.randn([2, 4], { generator: new tv.Generator(63) });
    const k = 1 / (1 + Math.exp(-2));
    close(
      run(iv, x, s),
      Array.from(x.data, (v, i) => v + k * (s.data[i] - v)),
      1e-5,
    );
    assert.equal(iv.getBoundaryParameters(), iv.masks);
  });

  it("PCARotatedSpace: the inverse is exact for k = d; partial swaps in the PCA basis", () => {
    const c = tv.orthogonal(3, 3, new tv.Generator(71));
    const mean = tensor([1, -2, 0.5]);
    const std = tensor([2, 0.5, 1]);
    const iv = new PCARotatedSpaceIntervention({ pca: { components: c }, pcaMean: mean, pcaStd: std });
    assert.equal(iv.embedDim, 3);
    const x = tv.randn([2, 3], { generator: new tv.Generator(72) });
    const s = tv.randn([2, 3], { generator: new tv.Generator(73) });
    close(run(iv, x, s), s.data, 1e-5, "full swap");
    iv.setInterchangeDim(0);
    close(run(iv, x, s), x.data, 1e-5, "no swap = inverse");
    iv.setInterchangeDim(1);
    const norm = (v: Tensor) => Array.from(v.data, (u, i) => (u - mean.data[i % 3]) / std.data[i % 3]);
    const ct = transposed(c.data, 3, 3);
    const rx = mm(norm(x), ct, 2, 3, 3);
    const rs = mm(norm(s), ct, 2, 3, 3);
    const back = mm(
      rx.map((v, i) => (i % 3 === 0 ? rs[i] : v)),
      c.data,
      2,
      3,
      3,
    );
    close(
      run(iv, x, s),
      back.map((v, i) => v * std.data[i % 3] + mean.data[i % 3]),
      1e-5,
      "first component",
    );
    assert.equal(iv.trainable, false);
    assert.equal(iv.countParameters(), 0);
    assert.deepEqual(
      iv.namedParameters().map(([k]) => k),
      ["pca_components", "pca_mean", "pca_std"],
    );
    assert.throws(
      () => new (PCARotatedSpaceIntervention as unknown as new (o: object) => Intervention)({ embedDim: 3 }),
      /needs the options pca/,
    );
  });

  it(`Autoencoder: pyvene's parameter names, encode subtracts the decoder bias, \
interchangeDim indexes the latent`, () => {
    const iv = new AutoencoderIntervention({ embedDim: 2, latentDim: 2 });
    assert.deepEqual(
      iv.namedParameters().map(([k]) => k),
      [
        "autoencoder.encoder.0.weight",
        "autoencoder.encoder.0.bias",
        "autoencoder.decoder.0.weight",
        "autoencoder.decoder.0.bias",
      ],
    );
    iv.loadStateDict({
      "autoencoder.encoder.0.weight": tensor([
        [1, 0],
        [1, 1],
      ]),
      "autoencoder.encoder.0.bias": tensor([0, -1]),
      "autoencoder.decoder.0.weight": tensor([
        [1, 0],
        [0, 2],
      ]),
      "autoencoder.decoder.0.bias": tensor([0.5, 0]),
    });
    const x = tensor([[1.5, 1]]);
    const s = tensor([[0.5, 3]]);
    assert.deepEqual(iv.autoencoder.encode(x).toArray(), [[1, 1]]);
    assert.deepEqual(iv.autoencoder.encode(s).toArray(), [[0, 2]]);
    assert.deepEqual(iv.autoencoder.call(x).toArray(), [[1.5, 2]]);
    assert.throws(
      () => run(iv, x, s),
      /interchangeDim 2 selects latent units by index \(latentDim = 2\); call setInterchangeDim/,
    );
    iv.setInterchangeDim([1]);
    assert.deepEqual(run(iv, x, s).toArray(), [[1.5, 4]]);
    iv.setInterchangeDim(0);
    assert.deepEqual(run(iv, x, s).toArray(), [[0.5, 2]]);
    assert.throws(() => new AutoencoderIntervention({ embedDim: 2 }), /needs latentDim/);
  });

  it("JumpReLUAutoencoder: the threshold gates the latents; swaps on latents", () => {
    const iv = new JumpReLUAutoencoderIntervention({ embedDim: 2, lowRankDimension: 3 });
    assert.equal(iv.keepLastDim, true);
    assert.equal(iv.distributed, false);
    assert.deepEqual(
      iv.namedParameters().map(([k]) => k),
      ["W_enc", "W_dec", "threshold", "b_enc", "b_dec"],
    );
    iv.loadStateDict({
      W_enc: tensor([
        [1, 0, 1],
        [0, 1, 1],
      ]),
      b_enc: tensor([0, 0, -1]),
      threshold: tensor([0.5, 0.5, 0.5]),
      W_dec: tensor([
        [1, 0],
        [0, 1],
        [1, 1],
      ]),
      b_dec: tensor([0.1, -0.1]),
    });
    const x = tensor([[1, 0.3]]);
    const s = tensor([[0.2, 2]]);
    close(iv.encode(x), [1, 0, 0], 1e-6, "base latent (0.3 ≤ θ is gated)");
    close(iv.encode(s), [0, 2, 1.2], 1e-6, "source latent");
    close(run(iv, x, s), [0.1, 1.9], 1e-6, "default: first embedDim = 2 latents");
    iv.setInterchangeDim([1]);
    close(run(iv, x, s), [1.1, 1.9], 1e-6, "latent 1");
    close(run(iv, x, s, [[2]]), [2.3, 1.1], 1e-6, "subspace latent 2");
    close(
      run(
        iv,
        tensor([
          [1, 0.3],
          [0.2, 2],
        ]),
        tensor([
          [0.2, 2],
          [1, 0.3],
        ]),
        [[2], [0]],
      ),
      [2.3, 1.1, 2.3, 3.1],
      1e-6,
      "per example",
    );
  });

  it("Lambda: a function's result, or null to write nothing", () => {
    const add1 = new LambdaIntervention((b) => tv.add(b, 1));
    assert.deepEqual(run(add1, tensor([[1, 2]]), null).toArray(), [[2, 3]]);
    const seen: unknown[] = [];
    const recorder = new LambdaIntervention(
      (b, s, sub) => {
        seen.push(b, s, sub);
        return null;
      },
      { usesSource: true },
    );
    const x = tensor([[1, 2]]);
    assert.equal(recorder.apply(x, { source: x, subspaces: [[0]] }), null);
    assert.equal(run(recorder, x, null), x);
    assert.deepEqual(seen.slice(0, 3), [x, x, [[0]]]);
    assert.equal(add1.sourceConstant, true);
    assert.equal(recorder.sourceConstant, false);
    assert.equal(add1.distributed, false);
    assert.throws(() => run(new LambdaIntervention(() => 3 as never), x, null), /must return a Tensor, or null/);
  });
});

describe("intervention flags, counts and the registry", () => {
  it("flags follow pyvene's classification table (§5.2)", () => {
    const n = 4;
    const rows: [Intervention, boolean, boolean, boolean][] = [
      // intervention, trainable, sourceConstant, distributed
      [new VanillaIntervention({ embedDim: n }), false, false, false],
      [new AdditionIntervention({ embedDim: n }), false, false, false],
      [new SubtractionIntervention({ embedDim: n }), false, false, false],
      [new ZeroIntervention({ embedDim: n }), false, true, false],
      [new CollectIntervention({ embedDim: n }), false, true, false],
      [new SkipIntervention({ embedDim: n }), false, false, false],
      [new ConstantSourceIntervention({ embedDim: n }), false, true, false],
      [new NoiseIntervention({ embedDim: n }), false, true, false],
      [new RotatedSpaceIntervention({ embedDim: n, sourceRepresentation: tv.zeros([n]) }), true, false, true],
      [new LowRankRotatedSpaceIntervention({ embedDim: n, lowRankDimension: 2 }), true, false, true],
      [new BoundlessRotatedSpaceIntervention({ embedDim: n }), true, false, false],
      [new SigmoidMaskIntervention({ embedDim: n }), true, false, false],
      [new SigmoidMaskRotatedSpaceIntervention({ embedDim: n }), true, false, true],
      [
        new PCARotatedSpaceIntervention({ pca: tv.orthogonal(n, n), pcaMean: tv.zeros([n]), pcaStd: tv.ones([n]) }),
        false,
        false,
        true,
      ],
      [new AutoencoderIntervention({ embedDim: n, latentDim: 3 }), true, false, true],
      [new JumpReLUAutoencoderIntervention({ embedDim: n, lowRankDimension: 3 }), true, false, false],
    ];
    for (const [iv, trainable, constant, flattens] of rows) {
      assert.equal(iv.trainable, trainable, `${iv.typeName}.trainable`);
      assert.equal(iv.sourceConstant, constant, `${iv.typeName}.sourceConstant`);
      assert.equal(iv.distributed, flattens, `${iv.typeName}.distributed`);
      assert.equal(String(iv), `${iv.typeName}()`);
    }
    assert.equal(new RotatedSpaceIntervention({ embedDim: n, keepLastDim: true }).distributed, false);
  });

  it("parameter counts as pyvene counts them", () => {
    assert.equal(new RotatedSpaceIntervention({ embedDim: 8 }).countParameters(), 64);
    assert.equal(new BoundlessRotatedSpaceIntervention({ embedDim: 8 }).countParameters(), 66);
    assert.equal(new SigmoidMaskIntervention({ embedDim: 8 }).countParameters(), 9);
    assert.equal(new LowRankRotatedSpaceIntervention({ embedDim: 8, lowRankDimension: 2 }).countParameters(), 16);
    assert.equal(new SigmoidMaskRotatedSpaceIntervention({ embedDim: 8 }).countParameters(), 73);
    assert.equal(new AutoencoderIntervention({ embedDim: 8, latentDim: 3 }).countParameters(), 8 * 3 + 3 + 3 * 8 + 8);
    assert.equal(
      new JumpReLUAutoencoderIntervention({ embedDim: 8, lowRankDimension: 3 }).countParameters(),
      24 + 24 + 3 + 3 + 8,
    );
    assert.equal(new VanillaIntervention({ embedDim: 8 }).countParameters(), 0);
    const b = new BoundlessRotatedSpaceIntervention({ embedDim: 8 });
    assert.deepEqual(
      b.namedParameters().map(([k]) => k),
      [
        "intervention_boundaries",
        "temperature",
        "intervention_population",
        "rotate_layer.parametrizations.weight.original",
        "rotate_layer.parametrizations.weight.0.base",
      ],
    );
    assert.deepEqual(
      b.trainableParameters().map(([k]) => k),
      ["intervention_boundaries", "temperature", "rotate_layer.parametrizations.weight.original"],
    );
    b.requireGrad(false);
    assert.equal(b.countParameters(), 0);
    b.requireGrad(true);
    assert.equal(b.countParameters(), 66);
    assert.equal(b.rotateLayer.base.requiresGrad, false);
    assert.equal(b.interventionPopulation.requiresGrad, false);
  });

  it("trainable interventions need embedDim", () => {
    for (const cls of [
      RotatedSpaceIntervention,
      BoundlessRotatedSpaceIntervention,
      SigmoidMaskIntervention,
      SigmoidMaskRotatedSpaceIntervention,
    ]) {
      assert.throws(() => new cls(), /needs embedDim \(a positive integer/);
    }
  });

  it("the registry and pyvene's class strings", () => {
    assert.equal(
      parseInterventionType("<class 'pyvene.models.interventions.VanillaIntervention'>"),
      VanillaIntervention,
    );
    assert.equal(
      parseInterventionType("pyvene.models.interventions.LowRankRotatedSpaceIntervention"),
      LowRankRotatedSpaceIntervention,
    );
    assert.equal(parseInterventionType("BoundlessRotatedSpaceIntervention"), BoundlessRotatedSpaceIntervention);
    assert.throws(
      () => parseInterventionType("<class 'pyvene.models.interventions.FancyIntervention'>"),
      /unknown intervention type .*FancyIntervention.*known: VanillaIntervention, /,
    );
    assert.throws(
      () => parseInterventionType("<class 'pyvene.models.modeling_utils.LambdaIntervention'>"),
      /wraps a function/,
    );
    assert.equal(Object.keys(INTERVENTION_TYPES).length, 16);
    for (const [name, cls] of Object.entries(INTERVENTION_TYPES) as [string, InterventionClass][]) {
      const iv =
        name === "PCARotatedSpaceIntervention"
          ? new cls({ pca: tv.orthogonal(4, 4), pcaMean: tv.zeros([4]), pcaStd: tv.ones([4]) })
          : new cls({ embedDim: 4, lowRankDimension: 2, latentDim: 3 });
      assert.equal(iv.typeName, name);
      assert.equal(parseInterventionType(pyveneClassString(iv)), cls);
    }
  });
});

describe("intervention gradients (finite differences)", () => {
  const x = () => leaf([2, 4], 101);
  const s = () => leaf([2, 4], 102);

  it("swap modes w.r.t. base and source, including collect", () => {
    for (const mode of ["interchange", "add", "subtract"] as const) {
      gradcheck(
        (b, src) => doInterventionBySwap(b, src, mode, { subspaces: [[0, 2], [3]] }),
        [leaf([2, 3, 4], 1), leaf([2, 3, 4], 2)],
      );
      gradcheck(
        (b, src) => doInterventionBySwap(b, src, mode, { interchangeDim: 2 }),
        [leaf([2, 3, 4], 3), leaf([4], 4)],
      );
    }
    gradcheck(
      (b) =>
        doInterventionBySwap(b, null, "collect", {
          subspaces: [
            [3, 1],
            [0, 2],
          ],
        }),
      [leaf([2, 3, 4], 5)],
    );
    gradcheck((b) => doInterventionBySwap(b, null, "collect", { subspaces: [2, 0] }), [leaf([2, 3, 4], 6)]);
  });

  it("non-trainable classes w.r.t. base and source", () => {
    gradcheck((b, src) => run(new VanillaIntervention({ embedDim: 3 }), b, src), [x(), s()]);
    gradcheck((b, src) => run(new AdditionIntervention(), b, src, [[1], [2, 3]]), [x(), s()]);
    gradcheck((b, src) => run(new SubtractionIntervention(), b, src, [0]), [x(), s()]);
    gradcheck((b) => run(new ZeroIntervention({ embedDim: 2 }), b, null), [x()]);
    gradcheck((b) => run(new NoiseIntervention({ embedDim: 4, noise: tv.ones([4]) }), b, null), [x()]);
    const pca = new PCARotatedSpaceIntervention({
      pca: tv.orthogonal(4, 4, new tv.Generator(9)),
      pcaMean: tensor([0, 1, 2, 3]),
      pcaStd: tensor([1, 2, 1, 0.5]),
    });
    pca.setInterchangeDim(2);
    gradcheck((b, src) => run(pca, b, src), [x(), s()]);
  });

  it("RotatedSpace w.r.t. θ, base and source", () => {
    const iv = new RotatedSpaceIntervention({ embedDim: 4, generator: new tv.Generator(111) });
    perturbTheta(iv.rotateLayer.original, 112);
    iv.setInterchangeDim(2);
    gradcheck((_t, b, src) => run(iv, b, src), [iv.rotateLayer.original, x(), s()]);
    gradcheck((_t, b, src) => run(iv, b, src, [[0], [1, 3]]), [iv.rotateLayer.original, x(), s()]);
  });

  it("LowRankRotatedSpace w.r.t. θ, base and source", () => {
    const iv = new LowRankRotatedSpaceIntervention({
      embedDim: 4,
      lowRankDimension: 2,
      generator: new tv.Generator(121),
    });
    perturbTheta(iv.rotateLayer.original, 122);
    for (let j = 0; j < 2; j++) iv.rotateLayer.original.data[j * 2 + j] = -1.5;
    gradcheck((_t, b, src) => run(iv, b, src), [iv.rotateLayer.original, x(), s()]);
    gradcheck((_t, b, src) => run(iv, b, src, [[1], [0]]), [iv.rotateLayer.original, x(), s()]);
  });

  it("BoundlessRotatedSpace w.r.t. θ, boundary, temperature, base and source", () => {
    const iv = new BoundlessRotatedSpaceIntervention({ embedDim: 4, generator: new tv.Generator(131) });
    perturbTheta(iv.rotateLayer.original, 132);
    iv.setTemperature(0.7);
    iv.setInterventionBoundaries(0.45);
    gradcheck(
      (_t, _b, _T, b, src) => run(iv, b, src),
      [iv.rotateLayer.original, iv.interventionBoundaries, iv.temperature, x(), s()],
      { eps: 2e-3 },
    );
  });

  it("SigmoidMask w.r.t. the mask, base and source", () => {
    const iv = new SigmoidMaskIntervention({ embedDim: 4 });
    iv.mask.data.set([0.3, -0.8, 1.2, 0]);
    iv.setTemperature(0.9);
    gradcheck((_m, b, src) => run(iv, b, src), [iv.mask, x(), s()]);
  });

  it("SigmoidMaskRotatedSpace w.r.t. θ, masks, temperature, base and source", () => {
    const iv = new SigmoidMaskRotatedSpaceIntervention({ embedDim: 4, generator: new tv.Generator(141) });
    perturbTheta(iv.rotateLayer.original, 142);
    iv.masks.data.set([0.5, -1, 2, 0.1]);
    iv.setTemperature(1.3);
    gradcheck((_t, _m, _T, b, src) => run(iv, b, src), [iv.rotateLayer.original, iv.masks, iv.temperature, x(), s()]);
  });

  it("Autoencoder w.r.t. its weights, base and source", () => {
    const iv = new AutoencoderIntervention({ embedDim: 4, latentDim: 3, generator: new tv.Generator(151) });
    iv.setInterchangeDim([0, 2]);
    const params = iv.parameters();
    // Keep the pre-activations away from ReLU's kink.
    const pre = (v: Tensor) =>
      tv.noGrad(() =>
        tv.linear(
          tv.sub(v, iv.autoencoder.decoderLinear.bias!),
          iv.autoencoder.encoderLinear.weight,
          iv.autoencoder.encoderLinear.bias,
        ),
      );
    for (const v of [x(), s()])
      for (const p of pre(v).data) assert.ok(Math.abs(p) > 0.01, `pre-activation ${p} too close to the ReLU kink`);
    gradcheck((_a, _b, _c, _d, b, src) => run(iv, b, src), [...params, x(), s()]);
  });

  it("JumpReLUAutoencoder w.r.t. its weights, base and source; the threshold gets none", () => {
    const iv = new JumpReLUAutoencoderIntervention({ embedDim: 4, lowRankDimension: 3 });
    const g = new tv.Generator(161);
    for (const p of [iv.W_enc, iv.W_dec, iv.b_enc, iv.b_dec]) p.data.set(tv.randn(p.shape, { generator: g }).data);
    iv.threshold.data.set([0.2, -0.3, 0.1]);
    const gap = (v: Tensor) => {
      const pre = tv.noGrad(() => tv.add(tv.matmul(v, iv.W_enc), iv.b_enc)).data;
      return Math.min(...Array.from(pre, (p, i) => Math.min(Math.abs(p), Math.abs(p - iv.threshold.data[i % 3]))));
    };
    assert.ok(gap(x()) > 0.01 && gap(s()) > 0.01, "pre-activations away from the gate and the kink");
    iv.setInterchangeDim(2);
    gradcheck((_a, _b, _c, _d, b, src) => run(iv, b, src), [iv.W_enc, iv.W_dec, iv.b_enc, iv.b_dec, x(), s()]);
    iv.threshold.grad = null;
    run(iv, x(), s()).sum().backward();
    assert.equal(iv.threshold.grad, null);
  });
});

describe("capabilities", () => {
  it("each kind declares what orchestration reads, instead of being recognised by name", () => {
    const d = 4;
    const kinds: [
      tv.Intervention,
      Partial<
        Record<
          | "distributed"
          | "collects"
          | "readsModuleInput"
          | "annealable"
          | "trainable"
          | "sourceConstant"
          | "configurable",
          boolean
        >
      >,
    ][] = [
      [new tv.VanillaIntervention({ embedDim: d }), {}],
      [new tv.CollectIntervention({ embedDim: d }), { collects: true, sourceConstant: true }],
      [new tv.SkipIntervention({ embedDim: d }), { readsModuleInput: true }],
      [new tv.ZeroIntervention({ embedDim: d }), { sourceConstant: true }],
      [new tv.RotatedSpaceIntervention({ embedDim: d }), { distributed: true, trainable: true }],
      [
        new tv.LowRankRotatedSpaceIntervention({ embedDim: d, lowRankDimension: 2 }),
        { distributed: true, trainable: true },
      ],
      [new tv.BoundlessRotatedSpaceIntervention({ embedDim: d }), { annealable: true, trainable: true }],
      [new tv.SigmoidMaskIntervention({ embedDim: d }), { annealable: true, trainable: true }],
      [new tv.SigmoidMaskRotatedSpaceIntervention({ embedDim: d }), { distributed: true, trainable: true }],
      [new tv.LambdaIntervention(() => null), { sourceConstant: true, configurable: false }],
    ];
    for (const [iv, expected] of kinds) {
      for (const capability of [
        "distributed",
        "collects",
        "readsModuleInput",
        "annealable",
        "trainable",
        "sourceConstant",
      ] as const) {
        assert.equal(iv[capability], expected[capability] ?? false, `${iv.typeName}.${capability}`);
      }
      assert.equal(iv.configurable, expected.configurable ?? true, `${iv.typeName}.configurable`);
    }
    assert.throws(
      () => new tv.VanillaIntervention({ embedDim: d }).setTemperature(1),
      /VanillaIntervention has no temperature to set/,
    );
  });

  it(`a new kind needs no change to the orchestrator: a custom collecting kind records, \
a custom distributed one sees flat units`, async () => {
    const { model } = await tv.loadPretrained(fixtureFolder("gpt2_tiny"));
    const widths: number[] = [];
    class Probe extends tv.Intervention {
      readonly typeName = "Probe";
      override get distributed(): boolean {
        return true;
      }
      protected forward(base: tv.Tensor): tv.Tensor {
        widths.push(base.shape[base.rank - 1]);
        return base;
      }
    }
    class Recorder extends tv.Intervention {
      readonly typeName = "Recorder";
      override get collects(): boolean {
        return true;
      }
      override get sourceConstant(): boolean {
        return true;
      }
      protected forward(base: tv.Tensor): tv.Tensor {
        return tv.mul(base, 2);
      }
    }
    const ids = { inputIds: tv.intTensor([[1, 2, 3, 4]]) };
    const im = new tv.IntervenableModel(
      [
        { layer: 1, component: "block_output", maxNumberOfUnits: 2, interventionType: Probe },
        { layer: 1, component: "block_output", maxNumberOfUnits: 2, interventionType: Recorder },
      ],
      model,
    );
    const { intervened, collected } = im.forward(ids, [ids], {
      unitLocations: {
        "sources->base": [
          [[[1, 2]], [[1, 2]]],
          [[[1, 2]], [[1, 2]]],
        ],
      },
    });
    assert.deepEqual(widths, [64]);
    assert.deepEqual(collected[0].shape, [1, 2, 32]);
    assert.deepEqual([...intervened.logits.data], [...model.run(ids).logits.data]);
  });
});

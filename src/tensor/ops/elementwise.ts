/** Elementwise ops: binary ones with NumPy broadcasting, unary activations, where and clamp. */
import { uninitialized } from "../storage.js";
import { record } from "../autograd.js";
import { kernels } from "../kernels/index.js";
import { broadcastShapes, type Shape } from "../shape.js";
import type { BinaryOp } from "../kernels/types.js";
import { broadcastBinary, broadcastTo, sumToShape } from "./broadcast.js";
import { Tensor } from "../tensor.js";

type Operand = Tensor | number;

function asTensor(v: Operand): Tensor {
  return typeof v === "number" ? new Tensor(new Float32Array([v]), []) : v;
}

type GradRule = (g: Float32Array, a: Tensor, b: Tensor, out: Float32Array, shape: Shape) => Float32Array;

function binary(op: BinaryOp, x: Operand, y: Operand, gradA: GradRule, gradB: GradRule): Tensor {
  const a = asTensor(x);
  const b = asTensor(y);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const data = broadcastBinary(op, a.data, a.shape, b.data, b.shape, shape);
  return record(new Tensor(data, shape), [a, b], (g) => [
    a.requiresGrad ? sumToShape(gradA(g, a, b, data, shape), shape, a.shape) : null,
    b.requiresGrad ? sumToShape(gradB(g, a, b, data, shape), shape, b.shape) : null,
  ]);
}

/** A fresh array r[i] = f(g[i], a[i], b[i]) over the broadcast of a and b (for the rarer rules). */
function pointwise(
  g: Float32Array,
  a: Tensor,
  b: Tensor,
  shape: Shape,
  f: (g: number, a: number, b: number) => number,
): Float32Array {
  const av = broadcastTo(a.data, a.shape, shape);
  const bv = broadcastTo(b.data, b.shape, shape);
  const r = uninitialized(g.length);
  for (let i = 0; i < r.length; i++) r[i] = f(g[i], av[i], bv[i]);
  return r;
}

function negated(g: Float32Array): Float32Array {
  const out = uninitialized(g.length);
  for (let i = 0; i < g.length; i++) out[i] = -g[i];
  return out;
}

export function add(x: Operand, y: Operand): Tensor {
  return binary(
    "add",
    x,
    y,
    (g) => g,
    (g) => g,
  );
}

export function sub(x: Operand, y: Operand): Tensor {
  return binary(
    "sub",
    x,
    y,
    (g) => g,
    (g) => negated(g),
  );
}

export function mul(x: Operand, y: Operand): Tensor {
  return binary(
    "mul",
    x,
    y,
    (g, _a, b, _o, s) => broadcastBinary("mul", g, s, b.data, b.shape, s),
    (g, a, _b, _o, s) => broadcastBinary("mul", g, s, a.data, a.shape, s),
  );
}

export function div(x: Operand, y: Operand): Tensor {
  return binary(
    "div",
    x,
    y,
    (g, _a, b, _o, s) => broadcastBinary("div", g, s, b.data, b.shape, s),
    (g, _a, b, out, s) => {
      const r = broadcastBinary("div", out, s, b.data, b.shape, s);
      for (let i = 0; i < r.length; i++) r[i] *= -g[i];
      return r;
    },
  );
}

/** a^b; the exponent's gradient uses log(a) and is NaN where a ≤ 0, as in PyTorch. */
export function pow(x: Operand, y: Operand): Tensor {
  return binary(
    "pow",
    x,
    y,
    (g, a, b, _o, s) => pointwise(g, a, b, s, (gi, ai, bi) => (bi === 0 ? 0 : gi * bi * ai ** (bi - 1))),
    (g, a, b, _o, s) => pointwise(g, a, b, s, (gi, ai, bi) => gi * ai ** bi * Math.log(ai)),
  );
}

/** Elementwise maximum (NaN wins); at ties each operand gets half the gradient, as in PyTorch. */
export function maximum(x: Operand, y: Operand): Tensor {
  const shareOfA = (p: number, q: number) => (p > q ? 1 : p === q ? 0.5 : 0);
  return binary(
    "maximum",
    x,
    y,
    (g, a, b, _o, s) => pointwise(g, a, b, s, (gi, ai, bi) => gi * shareOfA(ai, bi)),
    (g, a, b, _o, s) => pointwise(g, a, b, s, (gi, ai, bi) => gi * (1 - shareOfA(ai, bi))),
  );
}

/** Elementwise choice: cond ≠ 0 takes x, else y (all three broadcast). cond gets no gradient. */
export function where(cond: Tensor, x: Operand, y: Operand): Tensor {
  const a = asTensor(x);
  const b = asTensor(y);
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape, "where"), b.shape, "where");
  const c = broadcastTo(cond.data, cond.shape, shape);
  const av = broadcastTo(a.data, a.shape, shape);
  const bv = broadcastTo(b.data, b.shape, shape);
  const data = uninitialized(c.length);
  kernels().select(c, av, bv, data);
  return record(new Tensor(data, shape), [a, b], (g) => {
    const zeros = new Float32Array(g.length);
    const selected = (whereTrue: Float32Array, whereFalse: Float32Array) => {
      const r = uninitialized(g.length);
      kernels().select(c, whereTrue, whereFalse, r);
      return r;
    };
    return [
      a.requiresGrad ? sumToShape(selected(g, zeros), shape, a.shape) : null,
      b.requiresGrad ? sumToShape(selected(zeros, g), shape, b.shape) : null,
    ];
  });
}

/**
 * A unary op from its forward map and its backward rule; the rule sees the input, the output
 * and the upstream gradient and returns the input's gradient.
 */
function unary(
  x: Tensor,
  forward: (x: Float32Array, out: Float32Array) => void,
  backward: (g: Float32Array, x: Float32Array, y: Float32Array) => Float32Array,
): Tensor {
  const out = uninitialized(x.size);
  forward(x.data, out);
  return record(new Tensor(out, x.shape), [x], (g) => [backward(g, x.data, out)]);
}

function map(f: (v: number) => number): (x: Float32Array, out: Float32Array) => void {
  return (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  };
}

function pointwiseGrad(f: (g: number, x: number, y: number) => number) {
  return (g: Float32Array, x: Float32Array, y: Float32Array): Float32Array => {
    const r = uninitialized(g.length);
    for (let i = 0; i < g.length; i++) r[i] = f(g[i], x[i], y[i]);
    return r;
  };
}

export function neg(x: Tensor): Tensor {
  return unary(
    x,
    map((v) => -v),
    (g) => negated(g),
  );
}

export function exp(x: Tensor): Tensor {
  return unary(
    x,
    (v, o) => kernels().exp(v, o),
    pointwiseGrad((g, _x, y) => g * y),
  );
}

export function log(x: Tensor): Tensor {
  return unary(
    x,
    map(Math.log),
    pointwiseGrad((g, v) => g / v),
  );
}

export function sqrt(x: Tensor): Tensor {
  return unary(
    x,
    map(Math.sqrt),
    pointwiseGrad((g, _x, y) => g / (2 * y)),
  );
}

export function rsqrt(x: Tensor): Tensor {
  return unary(
    x,
    map((v) => 1 / Math.sqrt(v)),
    pointwiseGrad((g, v, y) => (-0.5 * g * y) / v),
  );
}

/** |x|; the gradient at 0 is 0, as in PyTorch. */
export function abs(x: Tensor): Tensor {
  return unary(
    x,
    map(Math.abs),
    pointwiseGrad((g, v) => g * Math.sign(v)),
  );
}

export function tanh(x: Tensor): Tensor {
  return unary(
    x,
    (v, o) => kernels().tanh(v, o),
    pointwiseGrad((g, _x, y) => g * (1 - y * y)),
  );
}

export function sigmoid(x: Tensor): Tensor {
  return unary(
    x,
    map((v) => 1 / (1 + Math.exp(-v))),
    pointwiseGrad((g, _x, y) => g * y * (1 - y)),
  );
}

/** max(x, 0); the gradient at 0 is 0, as in PyTorch. */
export function relu(x: Tensor): Tensor {
  return unary(
    x,
    (v, o) => kernels().relu(v, o),
    (g, v) => {
      const r = uninitialized(g.length);
      kernels().reluBackward(v, g, r);
      return r;
    },
  );
}

export type GeluApproximation = "none" | "tanh";

/** GELU: the exact erf form ("none", PyTorch's default) or the tanh approximation (GPT-2's gelu_new). */
export function gelu(x: Tensor, approximate: GeluApproximation = "none"): Tensor {
  if (approximate !== "none" && approximate !== "tanh") {
    throw new TypeError(`gelu: approximate must be "none" or "tanh", got ${JSON.stringify(approximate)}`);
  }
  const k = kernels();
  const fwd = approximate === "tanh" ? k.geluTanh : k.geluErf;
  const bwd = approximate === "tanh" ? k.geluTanhBackward : k.geluErfBackward;
  return unary(
    x,
    (v, o) => fwd.call(k, v, o),
    (g, v) => {
      const r = uninitialized(g.length);
      bwd.call(k, v, g, r);
      return r;
    },
  );
}

export function silu(x: Tensor): Tensor {
  const k = kernels();
  return unary(
    x,
    (v, o) => k.silu(v, o),
    (g, v) => {
      const r = uninitialized(g.length);
      k.siluBackward(v, g, r);
      return r;
    },
  );
}

/** Limits values to [min, max] (either bound optional); the gradient passes inside, bounds included, as in PyTorch. */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  if (min === undefined && max === undefined) throw new TypeError("clamp: give at least one of min and max");
  const lo = min ?? -Infinity;
  const hi = max ?? Infinity;
  if (lo > hi) throw new RangeError(`clamp: min ${lo} is greater than max ${hi}`);
  return unary(
    x,
    map((v) => (v < lo ? lo : Math.min(v, hi))),
    pointwiseGrad((g, v) => (v >= lo && v <= hi ? g : 0)),
  );
}

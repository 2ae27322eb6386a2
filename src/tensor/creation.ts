/** Making tensors: from values, constants, ranges and seeded random draws. */
import { readOptions } from "../options/index.js";
import { checkShape, formatShape, sizeOf, type Shape } from "./shape.js";
import { defaultGenerator, type Generator } from "./random.js";
import { IntTensor, Tensor, type NestedNumbers } from "./tensor.js";

/**
 * A tensor from nested arrays (shape inferred) or from flat values with a shape. Flat typed
 * arrays are copied, so later writes by the caller do not reach the tensor.
 */
export function tensor(values: NestedNumbers | ArrayLike<number>, shape?: Shape): Tensor {
  const flat = flatten(values);
  return new Tensor(Float32Array.from(flat), checkShape(shape ?? defaultShape(values), "tensor"));
}

/** An integer tensor (token ids, positions) from nested arrays or flat values with a shape. */
export function intTensor(values: NestedNumbers | ArrayLike<number>, shape?: Shape): IntTensor {
  const flat = Int32Array.from(flatten(values), (v) => {
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647)
      throw new TypeError(`intTensor: value ${v} is not a 32-bit integer`);
    return v;
  });
  return new IntTensor(flat, checkShape(shape ?? defaultShape(values), "intTensor"));
}

export function full(shape: Shape, value: number): Tensor {
  const s = checkShape(shape, "full");
  return new Tensor(new Float32Array(sizeOf(s)).fill(value), s);
}

export function zeros(shape: Shape): Tensor {
  const s = checkShape(shape, "zeros");
  return new Tensor(new Float32Array(sizeOf(s)), s);
}

export function ones(shape: Shape): Tensor {
  return full(shape, 1);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape);
}

export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1);
}

/** Values start, start+step, … below end (PyTorch's `arange`). */
export function arange(start: number, end?: number, step = 1): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  if (step === 0 || !Number.isFinite(step))
    throw new RangeError(`arange: step must be finite and non-zero, got ${step}`);
  const n = Math.max(0, Math.ceil((to - from) / step));
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = from + i * step;
  return new Tensor(data, [n]);
}

/** Standard normal draws times `std` plus `mean`, from `generator` (default: the global one). */
export function randn(shape: Shape, options: { mean?: number; std?: number; generator?: Generator } = {}): Tensor {
  const s = checkShape(shape, "randn");
  const {
    mean = 0,
    std = 1,
    generator = defaultGenerator,
  } = readOptions<typeof options>(options, ["mean", "std", "generator"], "randn options");
  const data = new Float32Array(sizeOf(s));
  for (let i = 0; i < data.length; i++) data[i] = mean + std * generator.normal();
  return new Tensor(data, s);
}

/** Uniform draws in [low, high), from `generator` (default: the global one). */
export function rand(shape: Shape, options: { low?: number; high?: number; generator?: Generator } = {}): Tensor {
  const s = checkShape(shape, "rand");
  const {
    low = 0,
    high = 1,
    generator = defaultGenerator,
  } = readOptions<typeof options>(options, ["low", "high", "generator"], "rand options");
  const data = new Float32Array(sizeOf(s));
  for (let i = 0; i < data.length; i++) data[i] = low + (high - low) * generator.uniform();
  return new Tensor(data, s);
}

function inferShape(values: NestedNumbers[]): number[] {
  const shape: number[] = [];
  let level: NestedNumbers = values;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0];
  }
  return shape;
}

/** The shape nested arrays spell out; flat array-likes are 1-D and a bare number is a scalar. */
function defaultShape(values: NestedNumbers | ArrayLike<number>): number[] {
  if (typeof values === "number") return [];
  if (!Array.isArray(values)) return [values.length];
  return inferShape(values);
}

function flatten(values: NestedNumbers | ArrayLike<number>): ArrayLike<number> {
  if (typeof values === "number") return [values];
  if (!Array.isArray(values)) return values;
  const expected = inferShape(values);
  const out: number[] = [];
  const walk = (v: NestedNumbers, depth: number): void => {
    if (depth === expected.length) {
      if (typeof v !== "number")
        throw new TypeError(`tensor: ragged nested array (expected shape ${formatShape(expected)})`);
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== expected[depth]) {
      throw new TypeError(`tensor: ragged nested array (expected shape ${formatShape(expected)})`);
    }
    for (const x of v) walk(x, depth + 1);
  };
  walk(values, 0);
  return out;
}

/**
 * The tensor: contiguous row-major float32 storage plus a shape, and for autograd, whether a
 * gradient is wanted, the node that made it, and the accumulated `.grad`. Tensors are immutable:
 * every op allocates its output, so activations a caller or a cache holds are never overwritten.
 * Methods are thin aliases of the functions in ops/, for code that reads like PyTorch.
 */
import { isGradEnabled, runBackward, type GradNode } from "./autograd.js";
import { checkShape, formatShape, sameShape, sizeOf, type Shape } from "./shape.js";
import { widen, type Dtype, type HalfStorage } from "./half.js";
import * as ew from "./ops/elementwise.js";
import * as red from "./ops/reduce.js";
import * as sh from "./ops/shape.js";
import * as ix from "./ops/indexing.js";
import * as mm from "./ops/matmul.js";
import * as nnops from "./ops/nn.js";

export type Scalar = number;
export type Indices = IntTensor | Int32Array | readonly number[];

/** Integer tensor for token ids, positions and indices; it carries no gradient. */
export class IntTensor {
  readonly data: Int32Array;
  readonly shape: readonly number[];

  constructor(data: Int32Array | readonly number[], shape?: Shape) {
    this.data = data instanceof Int32Array ? data : Int32Array.from(data, checkedInt);
    this.shape = checkShape(shape ?? [this.data.length], "IntTensor");
    if (sizeOf(this.shape) !== this.data.length) {
      throw new RangeError(`IntTensor: ${this.data.length} values do not fill shape ${formatShape(this.shape)}`);
    }
  }

  get size(): number {
    return this.data.length;
  }

  toArray(): NestedNumbers {
    return nest(this.data, this.shape);
  }
}

/** A value for an Int32Array, refused rather than truncated (5.7 must not become token 5). */
function checkedInt(v: number, i: number): number {
  if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
    throw new TypeError(`IntTensor: value ${v} at index ${i} is not a 32-bit integer`);
  }
  return v;
}

export type NestedNumbers = number | NestedNumbers[];

export class Tensor {
  readonly shape: readonly number[];
  readonly size: number;
  /** Whether backward() should compute a gradient for this tensor. */
  requiresGrad = false;
  /** The accumulated gradient of a leaf tensor after backward(). */
  grad: Tensor | null = null;
  /** How this tensor was computed, when it needs a gradient and is not a leaf. */
  node: GradNode | null = null;
  /** The float32 values; for a half tensor, their widening once something has read `.data`. */
  private values: Float32Array | null;
  private halfStorage: HalfStorage | null;
  /** What a deferred tensor's values are until its storage is allocated. */
  private readonly deferredFill: number;

  /**
   * A float32 tensor over `data`, or a 16-bit one over half `bits` (weights loaded in their
   * checkpoint dtype): matmul weights are read as they are; anything else that reads `.data`
   * gets their float32 widening, made once and kept. `{ deferredFill }`: see `Tensor.deferred`.
   */
  constructor(data: Float32Array | HalfStorage | { readonly deferredFill: number }, shape: Shape) {
    this.shape = checkShape(shape, "Tensor");
    this.size = sizeOf(this.shape);
    let length = this.size;
    if (data instanceof Float32Array) {
      this.values = data;
      this.halfStorage = null;
      this.deferredFill = 0;
      length = data.length;
    } else {
      this.values = null;
      this.halfStorage = "bits" in data ? data : null;
      this.deferredFill = "deferredFill" in data ? data.deferredFill : 0;
      if ("bits" in data) length = data.bits.length;
    }
    if (length !== this.size) {
      throw new RangeError(`Tensor: ${length} values do not fill shape ${formatShape(this.shape)}`);
    }
  }

  /**
   * A tensor of `fill` whose storage is allocated when first read: model parameters start so, and
   * a model whose weights are then loaded (shared, not copied) never allocates its placeholders.
   */
  static deferred(shape: Shape, fill: number): Tensor {
    return new Tensor({ deferredFill: fill }, shape);
  }

  /** The values as float32 (row-major). Writable for optimisers and loaders; ops never write it. */
  get data(): Float32Array {
    return this.values ?? this.allocate();
  }

  private allocate(): Float32Array {
    this.values =
      this.halfStorage === null ? new Float32Array(this.size).fill(this.deferredFill) : widen(this.halfStorage);
    return this.values;
  }

  /** "float32", or the 16-bit dtype the values are stored in. */
  get dtype(): Dtype {
    return this.halfStorage?.dtype ?? "float32";
  }

  /** The 16-bit storage of a half tensor; null for float32. */
  get half(): HalfStorage | null {
    return this.halfStorage;
  }

  /**
   * Makes this tensor hold `source`'s storage (same shape), without copying: how a loader puts a
   * checkpoint's tensors into a model's parameters, which keep their identity (tied weights,
   * references held by layers). Its gradient state is cleared.
   */
  adoptStorage(source: Tensor): void {
    if (!sameShape(source.shape, this.shape))
      throw new RangeError(
        `adoptStorage: shape ${formatShape(source.shape)} given for a tensor of shape ${formatShape(this.shape)}`,
      );
    if (source.halfStorage !== null && this.requiresGrad)
      throw new Error("adoptStorage: a tensor that requires a gradient cannot hold 16-bit storage (it is frozen)");
    this.values = source.values ?? (source.halfStorage === null ? source.data : null);
    this.halfStorage = source.halfStorage;
    this.grad = null;
  }

  get rank(): number {
    return this.shape.length;
  }

  get isLeaf(): boolean {
    return this.node === null;
  }

  /** Sets requiresGrad on a leaf (PyTorch's `requires_grad_`). */
  requireGrad(flag = true): this {
    if (this.node !== null)
      throw new Error("requireGrad: only leaf tensors can be marked; use detach() to make a leaf");
    if (flag && this.halfStorage !== null)
      throw new Error(
        `requireGrad: this tensor holds ${this.halfStorage.dtype} weights, which are frozen ` +
          '(load the model with dtype "float32" to train its weights)',
      );
    this.requiresGrad = flag;
    return this;
  }

  /** The same values, cut from the graph. Shares storage (tensors are never written in place). */
  detach(): Tensor {
    return new Tensor(this.halfStorage ?? this.data, this.shape);
  }

  clone(): Tensor {
    const half = this.halfStorage;
    return new Tensor(half === null ? this.data.slice() : { dtype: half.dtype, bits: half.bits.slice() }, this.shape);
  }

  item(): number {
    if (this.size !== 1)
      throw new RangeError(`item: tensor of shape ${formatShape(this.shape)} has ${this.size} values, expected 1`);
    return this.data[0];
  }

  toArray(): NestedNumbers {
    return nest(this.data, this.shape);
  }

  /**
   * Computes gradients of this tensor w.r.t. every leaf that requires one, adding them into the
   * leaves' `.grad`. A non-scalar tensor needs the upstream `grad` of its own shape.
   */
  backward(grad?: Tensor, options: { retainGraph?: boolean } = {}): void {
    if (!this.requiresGrad)
      throw new Error(
        "backward: this tensor does not require a gradient " +
          "(no input was marked with requireGrad, or it was computed under noGrad)",
      );
    let seed: Float32Array;
    if (grad === undefined) {
      if (this.size !== 1)
        throw new RangeError(
          `backward: a gradient argument is needed for a non-scalar tensor of shape ${formatShape(this.shape)}`,
        );
      seed = new Float32Array([1]);
    } else {
      if (grad.size !== this.size || grad.rank !== this.rank || grad.shape.some((d, i) => d !== this.shape[i])) {
        throw new RangeError(
          `backward: gradient shape ${formatShape(grad.shape)} does not match tensor shape ${formatShape(this.shape)}`,
        );
      }
      seed = grad.data;
    }
    runBackward(this, seed, options.retainGraph ?? false);
  }

  /** Adds a gradient into `.grad` (used by the autograd engine for leaves). */
  accumulateGrad(g: Float32Array): void {
    if (this.grad === null) {
      this.grad = new Tensor(g.slice(), this.shape);
    } else {
      const acc = this.grad.data;
      for (let i = 0; i < acc.length; i++) acc[i] += g[i];
    }
  }

  zeroGrad(): void {
    this.grad = null;
  }

  toString(): string {
    const grad = this.requiresGrad && isGradEnabled() ? ", requiresGrad" : "";
    return `Tensor(shape=${formatShape(this.shape)}${grad})`;
  }

  add(other: Tensor | Scalar): Tensor {
    return ew.add(this, other);
  }
  sub(other: Tensor | Scalar): Tensor {
    return ew.sub(this, other);
  }
  mul(other: Tensor | Scalar): Tensor {
    return ew.mul(this, other);
  }
  div(other: Tensor | Scalar): Tensor {
    return ew.div(this, other);
  }
  pow(exponent: Tensor | Scalar): Tensor {
    return ew.pow(this, exponent);
  }
  maximum(other: Tensor | Scalar): Tensor {
    return ew.maximum(this, other);
  }
  neg(): Tensor {
    return ew.neg(this);
  }
  exp(): Tensor {
    return ew.exp(this);
  }
  log(): Tensor {
    return ew.log(this);
  }
  sqrt(): Tensor {
    return ew.sqrt(this);
  }
  rsqrt(): Tensor {
    return ew.rsqrt(this);
  }
  abs(): Tensor {
    return ew.abs(this);
  }
  tanh(): Tensor {
    return ew.tanh(this);
  }
  sigmoid(): Tensor {
    return ew.sigmoid(this);
  }
  relu(): Tensor {
    return ew.relu(this);
  }
  gelu(approximate: ew.GeluApproximation = "none"): Tensor {
    return ew.gelu(this, approximate);
  }
  silu(): Tensor {
    return ew.silu(this);
  }
  clamp(min?: number, max?: number): Tensor {
    return ew.clamp(this, min, max);
  }

  sum(axes?: number | readonly number[], keepDims = false): Tensor {
    return red.sum(this, axes, keepDims);
  }
  mean(axes?: number | readonly number[], keepDims = false): Tensor {
    return red.mean(this, axes, keepDims);
  }
  max(axis: number, keepDims = false): Tensor {
    return red.max(this, axis, keepDims);
  }
  argmax(axis: number, keepDims = false): IntTensor {
    return red.argmax(this, axis, keepDims);
  }
  logsumexp(axis: number, keepDims = false): Tensor {
    return red.logsumexp(this, axis, keepDims);
  }
  var(axes?: number | readonly number[], options?: red.VarianceOptions): Tensor {
    return red.variance(this, axes, options);
  }

  reshape(shape: readonly number[]): Tensor {
    return sh.reshape(this, shape);
  }
  transpose(dim0 = -2, dim1 = -1): Tensor {
    return sh.transpose(this, dim0, dim1);
  }
  permute(dims: readonly number[]): Tensor {
    return sh.permute(this, dims);
  }
  slice(axis: number, start: number, end?: number): Tensor {
    return sh.slice(this, axis, start, end);
  }
  split(sizes: number | readonly number[], axis = 0): Tensor[] {
    return sh.split(this, sizes, axis);
  }
  expand(shape: readonly number[]): Tensor {
    return sh.expand(this, shape);
  }
  squeeze(axis?: number): Tensor {
    return sh.squeeze(this, axis);
  }
  unsqueeze(axis: number): Tensor {
    return sh.unsqueeze(this, axis);
  }

  indexSelect(axis: number, indices: Indices): Tensor {
    return ix.indexSelect(this, axis, indices);
  }
  gatherAt(axis: number, index: IntTensor): Tensor {
    return ix.gatherAt(this, axis, index);
  }
  writeAt(axis: number, index: IntTensor, values: Tensor): Tensor {
    return ix.writeAt(this, axis, index, values);
  }

  matmul(other: Tensor): Tensor {
    return mm.matmul(this, other);
  }
  softmax(axis = -1): Tensor {
    return nnops.softmax(this, axis);
  }
  logSoftmax(axis = -1): Tensor {
    return nnops.logSoftmax(this, axis);
  }
}

function nest(data: ArrayLike<number>, shape: Shape): NestedNumbers {
  if (shape.length === 0) return data[0];
  const build = (offset: number, dim: number): NestedNumbers[] => {
    const n = shape[dim];
    const inner = sizeOf(shape.slice(dim + 1));
    const out: NestedNumbers[] = new Array(n);
    for (let i = 0; i < n; i++) {
      out[i] = dim === shape.length - 1 ? data[offset + i] : build(offset + i * inner, dim + 1);
    }
    return out;
  };
  return build(0, 0);
}

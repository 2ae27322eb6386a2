/**
 * The leaf layers model families share. Parameters start at zero (norm weights at one), deferred:
 * their storage is allocated only if read before a checkpoint's weights replace them, so loading a
 * model never holds it twice. A model is either loaded or initialised explicitly with `initNormal`.
 */
import * as tv from "../tensor/index.js";
import type { IntTensor, Tensor } from "../tensor/index.js";
import { Module, type AnyModule } from "./module.js";

/** y = x·Wᵀ + b with W stored [out, in] (torch.nn.Linear). */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean } = {},
  ) {
    super();
    this.weight = this.parameter("weight", tv.Tensor.deferred([outFeatures, inFeatures], 0));
    this.bias = options.bias === false ? null : this.parameter("bias", tv.Tensor.deferred([outFeatures], 0));
  }

  protected forward(x: Tensor): Tensor {
    return tv.linear(x, this.weight, this.bias);
  }
}

/** y = x·W + b with W stored [in, out]: GPT-2's Conv1D. */
export class Conv1D extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    super();
    this.weight = this.parameter("weight", tv.Tensor.deferred([inFeatures, outFeatures], 0));
    this.bias = this.parameter("bias", tv.Tensor.deferred([outFeatures], 0));
  }

  protected forward(x: Tensor): Tensor {
    return tv.linear(x, this.weight, this.bias, "in_out");
  }
}

/** Rows of a [vocab, dim] table for token ids of any shape. */
export class Embedding extends Module<IntTensor> {
  readonly weight: Tensor;

  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
  ) {
    super();
    this.weight = this.parameter("weight", tv.Tensor.deferred([numEmbeddings, dim], 0));
  }

  protected forward(ids: IntTensor): Tensor {
    return tv.embedding(this.weight, ids);
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    options: { affine?: boolean; bias?: boolean } = {},
  ) {
    super();
    const affine = options.affine ?? true;
    this.weight = affine ? this.parameter("weight", tv.Tensor.deferred([dim], 1)) : null;
    this.bias = affine && options.bias !== false ? this.parameter("bias", tv.Tensor.deferred([dim], 0)) : null;
  }

  protected forward(x: Tensor): Tensor {
    return tv.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/**
 * RMS norm. `offsetWeight` scales by (1 + w) as Gemma does (its checkpoints store w around 0),
 * and computes in float32 before the multiply, as Gemma's reference does.
 */
export class RMSNorm extends Module {
  readonly weight: Tensor | null;

  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
    readonly options: { offsetWeight?: boolean; affine?: boolean } = {},
  ) {
    super();
    const affine = options.affine ?? true;
    this.weight = affine
      ? this.parameter("weight", options.offsetWeight ? tv.Tensor.deferred([dim], 0) : tv.Tensor.deferred([dim], 1))
      : null;
  }

  protected forward(x: Tensor): Tensor {
    if (this.weight === null) return tv.rmsNorm(x, null, this.eps);
    if (!this.options.offsetWeight) return tv.rmsNorm(x, this.weight, this.eps);
    return tv.mul(tv.rmsNorm(x, null, this.eps), tv.add(this.weight, 1));
  }
}

/** HF's activation names (config `activation_function` / `hidden_act`) and their functions. */
const ACTIVATIONS: Record<string, (x: Tensor) => Tensor> = {
  gelu: (x) => tv.gelu(x, "none"),
  gelu_new: (x) => tv.gelu(x, "tanh"),
  gelu_pytorch_tanh: (x) => tv.gelu(x, "tanh"),
  gelu_fast: (x) => tv.gelu(x, "tanh"),
  relu: tv.relu,
  silu: tv.silu,
  swish: tv.silu,
  tanh: tv.tanh,
  sigmoid: tv.sigmoid,
  linear: (x) => x,
};

/** An activation as a module, so that its output is a hookable site (pyvene's mlp_activation). */
export class Activation extends Module {
  private readonly fn: (x: Tensor) => Tensor;

  constructor(readonly kind: string) {
    super();
    const fn = Object.hasOwn(ACTIVATIONS, kind) ? ACTIVATIONS[kind] : undefined;
    if (fn === undefined)
      throw new RangeError(`Activation: unknown activation "${kind}" (known: ${Object.keys(ACTIVATIONS).join(", ")})`);
    this.fn = fn;
  }

  protected forward(x: Tensor): Tensor {
    return this.fn(x);
  }
}

/**
 * Passes its input through. Stands where HF has dropout (inference is dropout-free) so that
 * the tensor there, e.g. attention weights, is a hookable site.
 */
export class Identity extends Module {
  protected forward(x: Tensor): Tensor {
    return x;
  }
}

/** Fills every parameter of a module with normal draws (std), biases with zeros, norm weights untouched. */
export function initNormal(module: AnyModule, std: number, generator: tv.Generator): void {
  for (const [name, p] of module.namedParameters()) {
    if (name.endsWith("bias")) p.data.fill(0);
    else if (p.rank >= 2) p.data.set(tv.randn(p.shape, { std, generator }).data);
  }
}

/**
 * AutoencoderIntervention: z_b = enc(x), z_s = enc(s), z_b[..., I] := z_s[..., I], out = dec(z_b),
 * with pyvene's AutoencoderLayer: enc(x) = ReLU(W_e (x − b_d) + b_e) (the decoder bias is
 * subtracted first), dec(z) = W_d z + b_d. Parameters (pyvene's names):
 * `autoencoder.encoder.0.weight` (latent×n), `autoencoder.encoder.0.bias`,
 * `autoencoder.decoder.0.weight` (n×latent), `autoencoder.decoder.0.bias`; initialised as
 * torch.nn.Linear does (uniform ±1/√fan_in), from `generator`.
 *
 * As in pyvene, interchangeDim is an *index* into the latent here, not a count: a number k
 * swaps latent unit k alone, a list swaps those units. Call setInterchangeDim([latent indices]);
 * the default (embedDim) is rarely meaningful. subspaces are ignored, as in pyvene.
 */
import { defaultGenerator, linear, rand, relu, sub, type Tensor } from "../../tensor/index.js";
import { Module, ModuleList } from "../../nn/module.js";
import { Activation, Linear } from "../../nn/layers.js";
import {
  DistributedTrainableIntervention,
  checkWidth,
  requireEmbedDim,
  requireSource,
  type InterventionInput,
  type InterventionOptions,
} from "../intervention.js";
import { broadcastSource, doInterventionBySwap } from "../swap.js";

/**
 * pyvene's AutoencoderLayer: encoder = Sequential(Linear(n, latent), ReLU),
 * decoder = Sequential(Linear(latent, n)).
 */
export class AutoencoderLayer extends Module {
  readonly encoder: ModuleList<Linear | Activation>;
  readonly decoder: ModuleList<Linear>;
  readonly encoderLinear: Linear;
  readonly decoderLinear: Linear;

  constructor(
    readonly inputDim: number,
    readonly latentDim: number,
    options: Pick<InterventionOptions, "generator"> = {},
  ) {
    super();
    this.encoderLinear = new Linear(inputDim, latentDim);
    this.decoderLinear = new Linear(latentDim, inputDim);
    this.encoder = this.module(
      "encoder",
      new ModuleList<Linear | Activation>([this.encoderLinear, new Activation("relu")]),
    );
    this.decoder = this.module("decoder", new ModuleList([this.decoderLinear]));
    const generator = options.generator ?? defaultGenerator;
    for (const layer of [this.encoderLinear, this.decoderLinear]) {
      const bound = 1 / Math.sqrt(layer.inFeatures);
      for (const p of [layer.weight, layer.bias!]) {
        p.data.set(rand(p.shape, { low: -bound, high: bound, generator }).data);
        p.requireGrad();
      }
    }
  }

  encode(x: Tensor): Tensor {
    return relu(linear(sub(x, this.decoderLinear.bias!), this.encoderLinear.weight, this.encoderLinear.bias));
  }

  decode(latent: Tensor): Tensor {
    return linear(latent, this.decoderLinear.weight, this.decoderLinear.bias);
  }

  /** The reconstruction dec(enc(x)). */
  protected forward(x: Tensor): Tensor {
    return this.decode(this.encode(x));
  }
}

export class AutoencoderIntervention extends DistributedTrainableIntervention {
  readonly typeName = "AutoencoderIntervention";

  readonly autoencoder: AutoencoderLayer;

  constructor(options: InterventionOptions = {}) {
    super(options);
    const n = requireEmbedDim(this.typeName, this.embedDim);
    const latent = options.latentDim;
    if (latent === null || latent === undefined || !Number.isInteger(latent) || latent < 1) {
      throw new TypeError(
        `${this.typeName} needs latentDim, a positive integer (pyvene: "Missing latent_dim in kwargs."); ` +
          `got ${String(latent)}`,
      );
    }
    this.autoencoder = this.module("autoencoder", new AutoencoderLayer(n, latent, { generator: options.generator }));
  }

  protected forward(base: Tensor, { source }: InterventionInput): Tensor {
    checkWidth(this.typeName, base, this.autoencoder.inputDim);
    const s = broadcastSource(base, requireSource(this, source));
    const zb = this.autoencoder.encode(base);
    const zs = this.autoencoder.encode(s);
    const dim = this.interchangeDim;
    const ids = dim === null ? null : typeof dim === "number" ? [dim] : dim;
    let swapped: Tensor;
    try {
      swapped = doInterventionBySwap(zb, zs, "interchange", { interchangeDim: ids });
    } catch (e) {
      throw new RangeError(
        `${this.typeName}: interchangeDim ${JSON.stringify(dim)} selects latent units by index ` +
          `(latentDim = ${this.autoencoder.latentDim}); call setInterchangeDim([latent indices]). ` +
          `${(e as Error).message}`,
      );
    }
    return this.autoencoder.decode(swapped);
  }
}

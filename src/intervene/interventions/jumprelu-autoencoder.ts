/**
 * JumpReLUAutoencoderIntervention (Gemma Scope SAEs): enc(x) = 1[x·W_enc + b_enc > θ] ⊙
 * ReLU(x·W_enc + b_enc), dec(a) = a·W_dec + b_dec, out = dec(swap(enc(x), enc(s))), where the swap
 * is the Vanilla one on the latents: the first interchangeDim latents (all, by default: it
 * starts as embedDim), or the subspaces (latent ids), per example. The output is the SAE
 * reconstruction, so reconstruction error is injected, as in pyvene.
 *
 * Parameters (pyvene's names, all zeros, meant to be loaded): W_enc (n×m), W_dec (m×n),
 * threshold (m), b_enc (m), b_dec (n), with m = lowRankDimension. The gate 1[· > θ] has no
 * gradient, so θ never receives one (as in PyTorch). keepLastDim is always true.
 */
import { Tensor, add, matmul, mul, relu, zeros } from "../../tensor/index.js";
import {
  DistributedTrainableIntervention,
  checkWidth,
  requireEmbedDim,
  requireSource,
  type InterventionInput,
  type InterventionOptions,
} from "../intervention.js";
import { broadcastSource, doInterventionBySwap } from "../swap.js";

export class JumpReLUAutoencoderIntervention extends DistributedTrainableIntervention {
  readonly typeName = "JumpReLUAutoencoderIntervention";

  readonly W_enc: Tensor;
  readonly W_dec: Tensor;
  readonly threshold: Tensor;
  readonly b_enc: Tensor;
  readonly b_dec: Tensor;

  constructor(options: InterventionOptions = {}) {
    super({ ...options, keepLastDim: true });
    const n = requireEmbedDim(this.typeName, this.embedDim);
    const m = options.lowRankDimension;
    if (m === null || m === undefined || !Number.isInteger(m) || m < 1) {
      throw new TypeError(
        `${this.typeName} needs lowRankDimension (the SAE width), a positive integer; got ${String(m)}`,
      );
    }
    this.W_enc = this.parameter("W_enc", zeros([n, m])).requireGrad();
    this.W_dec = this.parameter("W_dec", zeros([m, n])).requireGrad();
    this.threshold = this.parameter("threshold", zeros([m])).requireGrad();
    this.b_enc = this.parameter("b_enc", zeros([m])).requireGrad();
    this.b_dec = this.parameter("b_dec", zeros([n])).requireGrad();
  }

  encode(x: Tensor): Tensor {
    const pre = add(matmul(x, this.W_enc), this.b_enc);
    const m = this.threshold.size;
    const gate = new Float32Array(pre.size);
    for (let i = 0; i < pre.size; i++) gate[i] = pre.data[i] > this.threshold.data[i % m] ? 1 : 0;
    return mul(new Tensor(gate, pre.shape), relu(pre));
  }

  decode(acts: Tensor): Tensor {
    return add(matmul(acts, this.W_dec), this.b_dec);
  }

  protected forward(base: Tensor, { source, subspaces, useFast }: InterventionInput): Tensor {
    checkWidth(this.typeName, base, this.W_enc.shape[0]);
    const s = broadcastSource(base, requireSource(this, source));
    const latent = doInterventionBySwap(
      this.encode(base),
      this.encode(s),
      "interchange",
      this.swapOptions(subspaces, useFast),
    );
    return this.decode(latent);
  }
}

/**
 * SigmoidMaskIntervention: m = σ(mask / T), out = (1 − m) ⊙ x + m ⊙ s in the original basis
 * (m starts at 0.5). As in pyvene, T is detached in the forward (pyvene wraps it in
 * torch.tensor), so it never receives a gradient, although it is a counted parameter.
 * Parameters: `mask` (n, zeros), `temperature` (0-d, 0.01). subspaces are ignored.
 */
import { add, div, mul, sigmoid, sub, tensor, zeros, type Tensor } from "../../tensor/index.js";
import {
  TrainableIntervention,
  checkWidth,
  requireEmbedDim,
  requireSource,
  setScalarParameter,
  type InterventionInput,
  type InterventionOptions,
} from "../intervention.js";
import { broadcastSource } from "../swap.js";

export class SigmoidMaskIntervention extends TrainableIntervention {
  readonly typeName = "SigmoidMaskIntervention";

  override get annealable(): boolean {
    return true;
  }
  readonly mask: Tensor;
  readonly temperature: Tensor;

  constructor(options: InterventionOptions = {}) {
    super(options);
    const n = requireEmbedDim(this.typeName, this.embedDim);
    this.mask = this.parameter("mask", zeros([n])).requireGrad();
    this.temperature = this.parameter("temperature", tensor(0.01)).requireGrad();
  }

  getTemperature(): Tensor {
    return this.temperature;
  }

  override setTemperature(t: number | Tensor): void {
    setScalarParameter(this.temperature, t, `${this.typeName}.setTemperature`);
  }

  protected forward(base: Tensor, { source }: InterventionInput): Tensor {
    checkWidth(this.typeName, base, this.mask.size);
    const s = broadcastSource(base, requireSource(this, source));
    const m = sigmoid(div(this.mask, this.temperature.detach()));
    return add(mul(sub(1, m), base), mul(m, s));
  }
}

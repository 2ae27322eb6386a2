/**
 * SigmoidMaskRotatedSpaceIntervention: m = σ(masks / T) over the rotated coordinates (starts at
 * σ(2) ≈ 0.8808), out = ((1 − m) ⊙ x·W + m ⊙ s·W)·Wᵀ. T gets a gradient here (unlike
 * SigmoidMask). Parameters: `rotate_layer.*`, `masks` (n, 100.0), `temperature` (0-d, 50.0).
 * subspaces and interchangeDim are ignored. getBoundaryParameters returns the masks (pyvene's
 * method refers to a missing attribute).
 */
import { add, div, full, matmul, mul, sigmoid, sub, tensor, transpose, type Tensor } from "../../tensor/index.js";
import {
  DistributedTrainableIntervention,
  checkWidth,
  requireEmbedDim,
  requireSource,
  setScalarParameter,
  type InterventionInput,
  type InterventionOptions,
} from "../intervention.js";
import { RotateLayer } from "../rotation.js";
import { broadcastSource } from "../swap.js";

export class SigmoidMaskRotatedSpaceIntervention extends DistributedTrainableIntervention {
  readonly typeName = "SigmoidMaskRotatedSpaceIntervention";

  readonly rotateLayer: RotateLayer;
  readonly masks: Tensor;
  readonly temperature: Tensor;

  constructor(options: InterventionOptions = {}) {
    super(options);
    const n = requireEmbedDim(this.typeName, this.embedDim);
    this.rotateLayer = this.module("rotate_layer", new RotateLayer(n, { generator: options.generator }));
    this.masks = this.parameter("masks", full([n], 100)).requireGrad();
    this.temperature = this.parameter("temperature", tensor(50)).requireGrad();
  }

  getBoundaryParameters(): Tensor {
    return this.masks;
  }

  getTemperature(): Tensor {
    return this.temperature;
  }

  override setTemperature(t: number | Tensor): void {
    setScalarParameter(this.temperature, t, `${this.typeName}.setTemperature`);
  }

  protected forward(base: Tensor, { source }: InterventionInput): Tensor {
    checkWidth(this.typeName, base, this.rotateLayer.n);
    const s = broadcastSource(base, requireSource(this, source));
    const w = this.rotateLayer.weight();
    const m = sigmoid(div(this.masks, this.temperature));
    const mixed = add(mul(sub(1, m), matmul(base, w)), mul(m, matmul(s, w)));
    return matmul(mixed, transpose(w));
  }
}

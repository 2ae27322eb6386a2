/**
 * BoundlessRotatedSpaceIntervention: a soft mask over the rotated coordinates j = 0…n−1,
 *   β = clamp(intervention_boundaries, 1e-3, 1),  m_j = σ(j/T)·σ((β·n − j)/T),
 *   out = ((1 − m) ⊙ x·W + m ⊙ s·W)·Wᵀ.
 * The mask has shape (n) and broadcasts over all leading axes (pyvene builds it as (b, n),
 * which breaks for 3-D inputs with b > 1; spec §5.3 "INTENDED"). subspaces and interchangeDim
 * are ignored. Parameters: `rotate_layer.*`, `intervention_boundaries` (1), `temperature` (0-d,
 * trainable as in pyvene), `intervention_population` (arange(n), frozen; pyvene stores it as
 * int64, tsvene as float32).
 */
import {
  add,
  arange,
  clamp,
  div,
  matmul,
  mul,
  sigmoid,
  sub,
  tensor,
  transpose,
  type Tensor,
} from "../../tensor/index.js";
import {
  TrainableIntervention,
  checkWidth,
  markFrozen,
  requireEmbedDim,
  requireSource,
  setScalarParameter,
  type InterventionInput,
  type InterventionOptions,
} from "../intervention.js";
import { RotateLayer } from "../rotation.js";
import { broadcastSource } from "../swap.js";

export class BoundlessRotatedSpaceIntervention extends TrainableIntervention {
  readonly typeName = "BoundlessRotatedSpaceIntervention";

  override get annealable(): boolean {
    return true;
  }
  readonly rotateLayer: RotateLayer;
  readonly interventionBoundaries: Tensor;
  readonly temperature: Tensor;
  readonly interventionPopulation: Tensor;

  constructor(options: InterventionOptions = {}) {
    super(options);
    const n = requireEmbedDim(this.typeName, this.embedDim);
    this.rotateLayer = this.module("rotate_layer", new RotateLayer(n, { generator: options.generator }));
    this.interventionBoundaries = this.parameter("intervention_boundaries", tensor([0.5])).requireGrad();
    this.temperature = this.parameter("temperature", tensor(50)).requireGrad();
    this.interventionPopulation = markFrozen(this.parameter("intervention_population", arange(n)));
  }

  getBoundaryParameters(): Tensor {
    return this.interventionBoundaries;
  }

  getTemperature(): Tensor {
    return this.temperature;
  }

  /** Sets T in place (the parameter object stays the same, so optimisers keep it). */
  override setTemperature(t: number | Tensor): void {
    setScalarParameter(this.temperature, t, `${this.typeName}.setTemperature`);
  }

  /**
   * Sets the boundary β in place. (pyvene makes a new Parameter here, which an optimiser built
   * earlier no longer sees; tsvene keeps the same tensor.)
   */
  setInterventionBoundaries(value: number): void {
    setScalarParameter(this.interventionBoundaries, value, `${this.typeName}.setInterventionBoundaries`);
  }

  /** The current mask m over the rotated coordinates, shape (n). */
  boundaryMask(): Tensor {
    const n = this.rotateLayer.n;
    const beta = clamp(this.interventionBoundaries, 1e-3, 1);
    const t = this.temperature;
    const j = this.interventionPopulation;
    return mul(sigmoid(div(j, t)), sigmoid(div(sub(mul(beta, n), j), t)));
  }

  protected forward(base: Tensor, { source }: InterventionInput): Tensor {
    checkWidth(this.typeName, base, this.rotateLayer.n);
    const s = broadcastSource(base, requireSource(this, source));
    const w = this.rotateLayer.weight();
    const mask = this.boundaryMask();
    const mixed = add(mul(sub(1, mask), matmul(base, w)), mul(mask, matmul(s, w)));
    return matmul(mixed, transpose(w));
  }
}

/**
 * RotatedSpaceIntervention (DAS): rx = x·W, rs = s·W; rx[..., I] := rs[..., I]; out = rx·Wᵀ, with
 * W the n×n orthogonal rotation of `rotate_layer` (spec §5.3, §6). I is the first interchangeDim
 * rotated coordinates (all by default, which makes out = s), or the subspaces, per example.
 */
import { linear, matmul, type Tensor } from "../../tensor/index.js";
import {
  DistributedTrainableIntervention,
  checkWidth,
  requireEmbedDim,
  requireSource,
  type InterventionInput,
  type InterventionOptions,
} from "../intervention.js";
import { RotateLayer } from "../rotation.js";
import { broadcastSource, doInterventionBySwap } from "../swap.js";

export class RotatedSpaceIntervention extends DistributedTrainableIntervention {
  readonly typeName = "RotatedSpaceIntervention";

  readonly rotateLayer: RotateLayer;

  constructor(options: InterventionOptions = {}) {
    super(options);
    const n = requireEmbedDim(this.typeName, this.embedDim);
    this.rotateLayer = this.module("rotate_layer", new RotateLayer(n, { generator: options.generator }));
  }

  protected forward(base: Tensor, { source, subspaces, useFast }: InterventionInput): Tensor {
    checkWidth(this.typeName, base, this.rotateLayer.n);
    const s = broadcastSource(base, requireSource(this, source));
    const w = this.rotateLayer.weight();
    const rotated = doInterventionBySwap(
      matmul(base, w),
      matmul(s, w),
      "interchange",
      this.swapOptions(subspaces, useFast),
    );
    // rotated·Wᵀ as a linear layer with weight W: sgemm reads W transposed, with no copy.
    return linear(rotated, w);
  }
}

/**
 * LowRankRotatedSpaceIntervention: W is n×m with orthonormal columns (`rotate_layer`,
 * m = lowRankDimension), diff = s·W − x·W, and
 * - without subspaces: out = x + diff·Wᵀ, i.e. x + WWᵀ(s − x);
 * - with subspaces: out = x + diff[..., J]·W[:, J]ᵀ, J the selected rotated coordinates (partition
 *   blocks concatenated, or raw column indices), per example (pyvene's fast-path formula, applied
 *   per example; pyvene's per-example path also needs a partition, tsvene does not).
 * An id repeated within an example counts once. interchangeDim is not used (as in pyvene).
 */
import { add, matmul, mul, sub, transpose, type Tensor } from "../../tensor/index.js";
import {
  DistributedTrainableIntervention,
  checkWidth,
  requireEmbedDim,
  requireSource,
  type InterventionInput,
  type InterventionOptions,
} from "../intervention.js";
import { LowRankRotateLayer } from "../rotation.js";
import { broadcastSource, featureSelection, selectionMask } from "../swap.js";

export class LowRankRotatedSpaceIntervention extends DistributedTrainableIntervention {
  readonly typeName = "LowRankRotatedSpaceIntervention";

  readonly rotateLayer: LowRankRotateLayer;

  constructor(options: InterventionOptions = {}) {
    super(options);
    const n = requireEmbedDim(this.typeName, this.embedDim);
    const m = options.lowRankDimension;
    if (m === null || m === undefined || !Number.isInteger(m) || m < 1 || m > n) {
      throw new TypeError(
        `${this.typeName} needs lowRankDimension, an integer from 1 to embedDim = ${n}; got ${String(m)}`,
      );
    }
    this.rotateLayer = this.module("rotate_layer", new LowRankRotateLayer(n, m, { generator: options.generator }));
  }

  get lowRankDimension(): number {
    return this.rotateLayer.m;
  }

  protected forward(base: Tensor, { source, subspaces, useFast = this.useFast }: InterventionInput): Tensor {
    checkWidth(this.typeName, base, this.rotateLayer.n);
    const s = broadcastSource(base, requireSource(this, source));
    const w = this.rotateLayer.weight();
    let diff = sub(matmul(s, w), matmul(base, w));
    if (subspaces !== null && subspaces !== undefined) {
      const batch = base.rank >= 2 ? base.shape[0] : null;
      const selection = featureSelection(
        this.rotateLayer.m,
        batch,
        { subspaces, subspacePartition: this.subspacePartition, useFast },
        this.typeName,
      );
      diff = mul(diff, selectionMask(selection, diff.shape));
    }
    return add(base, matmul(diff, transpose(w)));
  }
}

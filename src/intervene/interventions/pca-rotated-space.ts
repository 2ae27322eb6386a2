/**
 * PCARotatedSpaceIntervention: x̂ = (x − μ)/σ, ŝ = (s − μ)/σ; rx = x̂·Cᵀ, rs = ŝ·Cᵀ (C = the k×d
 * PCA components); rx[..., I] := rs[..., I]; out = (rx·C) ⊙ σ + μ. Exactly invertible only when
 * k = d. Not trainable: `pca_components`, `pca_mean`, `pca_std` are frozen parameters. pyvene
 * takes a fitted sklearn PCA (`pca.components_`); tsvene takes the components tensor (or an
 * object with `components` / `components_`).
 */
import { Tensor, add, div, matmul, mul, sub, tensor, transpose, type NestedNumbers } from "../../tensor/index.js";
import { formatShape } from "../../tensor/shape.js";
import {
  Intervention,
  checkWidth,
  markFrozen,
  requireSource,
  type InterventionInput,
  type InterventionOptions,
} from "../intervention.js";
import { broadcastSource, doInterventionBySwap } from "../swap.js";

type Values = Tensor | NestedNumbers;

export interface PCARotatedSpaceOptions extends InterventionOptions {
  /** The k×d components (rows are principal directions). */
  pca: Values | { components: Values } | { components_: Values };
  /** Per-feature mean μ (d). */
  pcaMean: Values;
  /** Per-feature standard deviation σ (d). */
  pcaStd: Values;
}

function asTensor(v: Values): Tensor {
  return v instanceof Tensor ? v.detach().clone() : tensor(v);
}

function componentsOf(pca: PCARotatedSpaceOptions["pca"]): Tensor {
  if (pca instanceof Tensor || typeof pca === "number" || Array.isArray(pca)) return asTensor(pca);
  if (pca && typeof pca === "object") {
    if ("components" in pca) return asTensor(pca.components);
    if ("components_" in pca) return asTensor(pca.components_);
  }
  throw new TypeError(
    "PCARotatedSpaceIntervention: pca must be the k×d components (a tensor or nested arrays) " +
      "or an object with `components`",
  );
}

export class PCARotatedSpaceIntervention extends Intervention {
  readonly typeName = "PCARotatedSpaceIntervention";

  /** A distributed kind: k units are one vector of k·d features (pyvene's DistributedRepresentationIntervention). */
  override get distributed(): boolean {
    return !this.keepLastDim;
  }
  readonly pcaComponents: Tensor;
  readonly pcaMean: Tensor;
  readonly pcaStd: Tensor;

  constructor(options: PCARotatedSpaceOptions) {
    if (!options || options.pca === undefined || options.pcaMean === undefined || options.pcaStd === undefined) {
      throw new TypeError(
        "PCARotatedSpaceIntervention needs the options pca (k×d components), pcaMean (d) and pcaStd (d); " +
          "it cannot be built from a config alone",
      );
    }
    const components = componentsOf(options.pca);
    if (components.rank !== 2)
      throw new RangeError(
        `PCARotatedSpaceIntervention: pca components must be a k×d matrix, got shape ${formatShape(components.shape)}`,
      );
    const d = components.shape[1];
    super({ ...options, embedDim: options.embedDim ?? d }, ["pca", "pcaMean", "pcaStd"]);
    const mean = asTensor(options.pcaMean);
    const std = asTensor(options.pcaStd);
    for (const [name, t] of [
      ["pcaMean", mean],
      ["pcaStd", std],
    ] as const) {
      if (t.size !== d)
        throw new RangeError(
          `PCARotatedSpaceIntervention: ${name} must have d = ${d} values (the components' width), ` +
            `got shape ${formatShape(t.shape)}`,
        );
    }
    this.pcaComponents = markFrozen(this.parameter("pca_components", components));
    this.pcaMean = markFrozen(this.parameter("pca_mean", mean.reshape([d])));
    this.pcaStd = markFrozen(this.parameter("pca_std", std.reshape([d])));
  }

  /** Built from a fitted PCA, which a saved config does not hold. */
  override get configurable(): boolean {
    return false;
  }

  override get sourceConstant(): boolean {
    return false;
  }

  protected forward(base: Tensor, { source, subspaces }: InterventionInput): Tensor {
    checkWidth(this.typeName, base, this.pcaComponents.shape[1], "the PCA width d");
    const s = broadcastSource(base, requireSource(this, source));
    const c = this.pcaComponents;
    const project = (v: Tensor) => matmul(div(sub(v, this.pcaMean), this.pcaStd), transpose(c));
    const rotated = doInterventionBySwap(project(base), project(s), "interchange", this.swapOptions(subspaces));
    return add(mul(matmul(rotated, c), this.pcaStd), this.pcaMean);
  }
}

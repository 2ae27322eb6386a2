/**
 * CollectIntervention: returns x[..., I], the selected features (per example with per-example
 * subspaces, which then must select equally many). The caller records it and writes nothing.
 * It takes no source.
 */
import type { Tensor } from "../../tensor/index.js";
import { Intervention, type InterventionInput } from "../intervention.js";
import { doInterventionBySwap } from "../swap.js";

export class CollectIntervention extends Intervention {
  readonly typeName = "CollectIntervention";

  override get collects(): boolean {
    return true;
  }

  override get sourceConstant(): boolean {
    return true;
  }

  protected forward(base: Tensor, { source, subspaces, useFast }: InterventionInput): Tensor {
    if (source !== null && source !== undefined) {
      throw new TypeError("CollectIntervention takes no source (got one); it returns the selected features of base");
    }
    return doInterventionBySwap(base, null, "collect", this.swapOptions(subspaces, useFast));
  }
}

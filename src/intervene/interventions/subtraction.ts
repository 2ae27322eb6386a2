/** SubtractionIntervention: x[..., I] −= s[..., I]; s is the source representation when one is set. */
import type { Tensor } from "../../tensor/index.js";
import { Intervention, resolveSource, type InterventionInput } from "../intervention.js";
import { doInterventionBySwap } from "../swap.js";

export class SubtractionIntervention extends Intervention {
  readonly typeName = "SubtractionIntervention";

  protected forward(base: Tensor, { source, subspaces, useFast }: InterventionInput): Tensor {
    return doInterventionBySwap(base, resolveSource(this, source), "subtract", this.swapOptions(subspaces, useFast));
  }
}

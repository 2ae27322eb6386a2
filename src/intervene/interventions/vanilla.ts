/** VanillaIntervention: x[..., I] := s[..., I] (spec §5.3); s is the source representation when one is set. */
import type { Tensor } from "../../tensor/index.js";
import { Intervention, resolveSource, type InterventionInput } from "../intervention.js";
import { doInterventionBySwap } from "../swap.js";

export class VanillaIntervention extends Intervention {
  readonly typeName = "VanillaIntervention";

  protected forward(base: Tensor, { source, subspaces, useFast }: InterventionInput): Tensor {
    return doInterventionBySwap(base, resolveSource(this, source), "interchange", this.swapOptions(subspaces, useFast));
  }
}

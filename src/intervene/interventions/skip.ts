/**
 * SkipIntervention: the Vanilla swap, where the caller passes as the source the *input* of the
 * same module (so output := input on the selected features: "skip this layer"). It ignores any
 * source representation and is never source-constant.
 */
import type { Tensor } from "../../tensor/index.js";
import { Intervention, requireSource, type InterventionInput } from "../intervention.js";
import { doInterventionBySwap } from "../swap.js";

export class SkipIntervention extends Intervention {
  readonly typeName = "SkipIntervention";

  override get readsModuleInput(): boolean {
    return true;
  }

  override get sourceConstant(): boolean {
    return false;
  }

  protected forward(base: Tensor, { source, subspaces, useFast }: InterventionInput): Tensor {
    return doInterventionBySwap(base, requireSource(this, source), "interchange", this.swapOptions(subspaces, useFast));
  }
}

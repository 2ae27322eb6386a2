/**
 * ConstantSourceIntervention: pyvene's base class for source-constant interventions, made
 * concrete as the Vanilla swap from the constant `sourceRepresentation` (which must be set, at
 * construction or with setSourceRepresentation, before it runs). It never needs a source run.
 */
import type { Tensor } from "../../tensor/index.js";
import { Intervention, type InterventionInput } from "../intervention.js";
import { doInterventionBySwap } from "../swap.js";

export class ConstantSourceIntervention extends Intervention {
  readonly typeName = "ConstantSourceIntervention";

  override get sourceConstant(): boolean {
    return true;
  }

  protected forward(base: Tensor, { subspaces, useFast }: InterventionInput): Tensor {
    if (this.sourceRepresentation === null) {
      throw new TypeError(
        "ConstantSourceIntervention needs a sourceRepresentation " +
          "(pass it as an option or call setSourceRepresentation)",
      );
    }
    return doInterventionBySwap(base, this.sourceRepresentation, "interchange", this.swapOptions(subspaces, useFast));
  }
}

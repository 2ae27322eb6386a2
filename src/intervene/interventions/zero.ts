/** ZeroIntervention: x[..., I] := 0. Source-less; honours interchangeDim, subspaces and partitions. */
import { zerosLike, type Tensor } from "../../tensor/index.js";
import { Intervention, type InterventionInput } from "../intervention.js";
import { doInterventionBySwap } from "../swap.js";

export class ZeroIntervention extends Intervention {
  readonly typeName = "ZeroIntervention";

  override get sourceConstant(): boolean {
    return true;
  }

  protected forward(base: Tensor, { subspaces, useFast }: InterventionInput): Tensor {
    return doInterventionBySwap(base, zerosLike(base), "interchange", this.swapOptions(subspaces, useFast));
  }
}

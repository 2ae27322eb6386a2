/**
 * LambdaIntervention: wraps a plain function (base, source, subspaces) → Tensor | null, as pyvene
 * wraps lambdas passed as interventions. A null result means "record only, write nothing":
 * `run` returns it as is, and `call` returns base unchanged. Not flattened, not trainable.
 * Like pyvene's lambdas it runs whether or not there is a source; it reports sourceConstant
 * (needs no source run) unless built with `{ usesSource: true }`.
 */
import { Tensor } from "../../tensor/index.js";
import { Intervention, type InterventionInput, type InterventionOptions } from "../intervention.js";

export type InterventionFunction = (
  base: Tensor,
  source: Tensor | null,
  subspaces: unknown,
) => Tensor | null | undefined | void;

export interface LambdaOptions extends InterventionOptions {
  /** Whether the function reads the source, so a source run is needed (default false). */
  usesSource?: boolean;
}

export class LambdaIntervention extends Intervention {
  readonly typeName = "LambdaIntervention";
  readonly usesSource: boolean;

  constructor(
    readonly fn: InterventionFunction,
    options: LambdaOptions = {},
  ) {
    super(options, ["usesSource"]);
    if (typeof fn !== "function")
      throw new TypeError(
        `LambdaIntervention wraps a function (base, source, subspaces) => Tensor | null, got ${typeof fn}`,
      );
    this.usesSource = options.usesSource ?? false;
  }

  /** A function is not a config entry. */
  override get configurable(): boolean {
    return false;
  }

  override get sourceConstant(): boolean {
    return !this.usesSource;
  }

  /** The function's result: a replacement tensor, or null for "write nothing". */
  override apply(base: Tensor, input: InterventionInput): Tensor | null {
    const out = this.fn(base, input?.source ?? null, input?.subspaces ?? null) ?? null;
    if (out !== null && !(out instanceof Tensor)) {
      throw new TypeError(
        `LambdaIntervention: the function must return a Tensor, or null to write nothing; got ${typeof out}`,
      );
    }
    return out;
  }

  protected forward(base: Tensor, input: InterventionInput): Tensor {
    return this.apply(base, input) ?? base;
  }
}

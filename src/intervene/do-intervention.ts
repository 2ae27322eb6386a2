/**
 * pyvene's do_intervention: one intervention applied to the units gathered at a site. Distributed
 * kinds see multi-unit inputs flattened, (b, k, d) → (b, k·d) and (b, kh, kp, d) → (b, kp, kh·d),
 * and their result is unflattened again; an InterventionOutput keeps its latent as returned and
 * gets its output unflattened.
 */
import { Tensor } from "../tensor/index.js";
import { type Intervention, type InterventionInput, InterventionOutput } from "./intervention.js";
import { flattenUnits } from "./units.js";

export function doIntervention(
  intervention: Intervention,
  base: Tensor,
  input: InterventionInput,
): Tensor | InterventionOutput | null {
  if (!intervention.distributed || base.rank <= 2) return checkedResult(intervention, intervention.apply(base, input));
  const { flat, unflatten } = flattenUnits(base);
  const { source } = input;
  const flatSource = source !== null && source.rank === base.rank ? flattenUnits(source).flat : source;
  const result = checkedResult(intervention, intervention.apply(flat, { ...input, source: flatSource }));
  if (result instanceof InterventionOutput)
    return new InterventionOutput({ output: unflatten(result.output), latent: result.latent });
  return result === null ? null : unflatten(result);
}

/** What `apply` returned, if it is one of the three things it may return. */
function checkedResult(intervention: Intervention, result: unknown): Tensor | InterventionOutput | null {
  if (result === null || result instanceof InterventionOutput || result instanceof Tensor) return result;
  throw new TypeError(
    `${intervention.typeName}.apply must return a Tensor, an InterventionOutput or null, got ${typeof result}`,
  );
}

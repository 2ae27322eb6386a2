/**
 * Handing a forward pass's dead intermediates back to the tensor storage (tensor/storage.ts), so
 * that later outputs reuse their arrays instead of fresh ones, which cost garbage collections and
 * cold memory. A module may do so for a tensor it made inside its own forward and does not return,
 * once it has computed what depends on it: after that only a hook of a module that saw the tensor,
 * or a gradient node, could still hold it. Hooks are read twice, when the forward starts
 * (`quietSubmodules`) and when it recycles (`recycleIntermediate`), so a hook attached at either
 * time keeps what it saw.
 */
import { recyclable, recycle, SMALLEST_RECYCLED } from "../tensor/storage.js";
import type { Tensor } from "../tensor/index.js";
import type { AnyModule } from "./module.js";

function hookless(module: AnyModule): boolean {
  if (module.hookCount > 0) return false;
  for (const [, child] of module.children()) if (!hookless(child)) return false;
  return true;
}

const NONE: ReadonlySet<AnyModule> = new Set();

/**
 * The direct submodules of `module` with no hook on them or below them, as its forward starts with
 * `input`; none when the input is too small to be recycled (a one-token step), where walking the
 * modules would cost more than the arrays its intermediates could give back.
 */
export function quietSubmodules(module: AnyModule, input: Tensor): ReadonlySet<AnyModule> {
  if (input.size < SMALLEST_RECYCLED) return NONE;
  return new Set(module.children().flatMap(([, child]) => (hookless(child) ? [child] : [])));
}

/**
 * Recycles `intermediate`'s storage when `consumer` (computed, directly or through its other uses,
 * from every use of it) records no gradient and every module in `sawIt` (the submodules that
 * produced, received or passed it on) was quiet when the forward started and still has no hook on
 * or below it. The caller guarantees the rest: the tensor was made in this forward, is not
 * returned, and nothing after this reads it.
 */
export function recycleIntermediate(
  intermediate: Tensor,
  consumer: Tensor,
  quiet: ReadonlySet<AnyModule>,
  ...sawIt: AnyModule[]
): void {
  if (!recyclable(intermediate.data) || intermediate.requiresGrad || consumer.requiresGrad) return;
  if (!sawIt.every((m) => quiet.has(m) && hookless(m))) return;
  recycle(intermediate.data);
}

/**
 * The site port: the one place that hooks a site of a model, to read the component's value there
 * or to replace it. IntervenableModel, the sweeps and collection all go through it, so the choice
 * between a pre-hook (a module's input) and a post-hook (its output), and the view of the value as
 * the component (one part of a fused projection, split into heads), are made here only.
 */
import type { AnyModule, HookHandle } from "../nn/module.js";
import type { Tensor } from "../tensor/index.js";
import type { ResolvedSite } from "./resolve-site.js";
import { componentView, withComponent } from "./units.js";

export { gatherUnits, scatterUnits } from "./units.js";

/**
 * Sees the component's value each time the site's module runs;
 * `context` is the model's per-call context (e.g. the time step).
 */
export type SiteReader = (view: Tensor, context: unknown) => void;
/**
 * Returns the component's new value, or undefined to leave it; `moduleInput` is the site
 * module's input viewed as the component, when asked for.
 */
export type SiteWriter = (view: Tensor, context: unknown, moduleInput?: Tensor) => Tensor | undefined;

/**
 * Calls `read` with the component's value each time the site's module runs. With `moduleInput`,
 * an output site is read at its module's input instead (Skip's source: "the layer skipped").
 */
export function readSite(
  model: AnyModule,
  site: ResolvedSite,
  read: SiteReader,
  options: { moduleInput?: boolean } = {},
): HookHandle {
  const module = model.getModule(site.module);
  if (site.hook === "input")
    return module.addPreHook((_m, input, context) => void read(componentView(input as Tensor, site), context));
  return module.addPostHook(
    (_m, input, output, context) =>
      void read(componentView(options.moduleInput ? (input as Tensor) : output, site), context),
  );
}

/**
 * Replaces the component's value by what `write` returns each time the site's module runs (out of
 * place). With `moduleInput`, `write` also sees the module's input (pyvene's as_adaptor); at an
 * input site that is the value itself.
 */
export function writeSite(
  model: AnyModule,
  site: ResolvedSite,
  write: SiteWriter,
  options: { moduleInput?: boolean } = {},
): HookHandle {
  const module = model.getModule(site.module);
  const replace = (value: Tensor, context: unknown, input: unknown): Tensor | undefined => {
    const inputView = options.moduleInput ? componentView(input as Tensor, site) : undefined;
    const written = write(componentView(value, site), context, inputView);
    return written === undefined ? undefined : withComponent(value, site, written);
  };
  if (site.hook === "input") return module.addPreHook((_m, input, context) => replace(input as Tensor, context, input));
  return module.addPostHook((_m, input, output, context) => replace(output, context, input));
}

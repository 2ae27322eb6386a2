/** Resolving a representation to the module and view it intervenes on. */
import type { AnyModule } from "../nn/module.js";
import { PretrainedModel } from "../models/model.js";
import type { Site, SiteMap } from "../models/sites.js";
import type { RepresentationConfig } from "./config.js";

/** A site whose width may be unknown (module paths outside a site map). */
export type ResolvedSite = Omit<Site, "dim"> & { readonly dim: number | null };

/**
 * The site of a representation: the user's site map first, then the model's own (for tsvene's
 * families), else a module path written as pyvene's string access, "<module path>.input" or
 * ".output" (with "h[0]" and "h.0" both accepted); such a site has no known width.
 */
export function resolveSite(model: AnyModule, representation: RepresentationConfig, where: string, userSites?: SiteMap): ResolvedSite {
  const { component, layer } = representation;
  const custom = userSites?.[component];
  if (custom) return custom(layer);
  if (model instanceof PretrainedModel && !component.includes(".")) {
    try {
      return model.site(component, layer);
    } catch (e) {
      throw new RangeError(`${where}: ${(e as Error).message}`);
    }
  }
  const match = /^(.*)\.(input|output)$/.exec(component);
  if (!match) {
    const known = userSites ? Object.keys(userSites).join(", ") : "none (give a site map)";
    throw new RangeError(`${where}.component "${component}" is neither a known component (known: ${known}) nor a module path ending in ".input" or ".output"`);
  }
  const path = match[1].replace(/\[(\d+)\]/g, ".$1");
  try {
    model.getModule(path);
  } catch (e) {
    throw new RangeError(`${where}.component "${component}": ${(e as Error).message}`);
  }
  return { module: path, hook: match[2] as "input" | "output", dim: null };
}

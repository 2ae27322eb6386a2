/** Resolving a representation to the module and view it intervenes on, and checking its unit fits. */
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
export function resolveSite(
  model: AnyModule,
  representation: RepresentationConfig,
  where: string,
  userSites?: SiteMap,
): ResolvedSite {
  const site = findSite(model, representation, where, userSites);
  checkUnit(site, representation, model, where);
  return site;
}

function findSite(
  model: AnyModule,
  representation: RepresentationConfig,
  where: string,
  userSites?: SiteMap,
): ResolvedSite {
  const { component, layer } = representation;
  if (userSites !== undefined && Object.hasOwn(userSites, component)) return userSites[component](layer);
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
    throw new RangeError(
      `${where}.component "${component}" is neither a known component (known: ${known}) ` +
        'nor a module path ending in ".input" or ".output"',
    );
  }
  const path = match[1].replace(/\[(\d+)\]/g, ".$1");
  try {
    model.getModule(path);
  } catch (e) {
    throw new RangeError(`${where}.component "${component}": ${(e as Error).message}`);
  }
  return { module: path, hook: match[2] as "input" | "output", dim: null };
}

/**
 * The units a site's value can be indexed by: heads for head components, time steps on
 * recurrent cells, positions otherwise. A module path outside any site map may be any of the
 * tensor units (its shape is the caller's to know), but "t" only on a recurrent model.
 */
export function unitsOf(site: ResolvedSite, model: AnyModule): readonly string[] {
  if (site.heads) return ["h", "h.pos"];
  if (site.recurrent) return ["t"];
  if (site.dim !== null) return ["pos"];
  return isRecurrent(model) ? ["t"] : ["pos", "h", "h.pos"];
}

function isRecurrent(model: AnyModule): boolean {
  return model instanceof PretrainedModel && Object.values(model.sites).some((at) => at(0).recurrent === true);
}

function checkUnit(site: ResolvedSite, representation: RepresentationConfig, model: AnyModule, where: string): void {
  const allowed = unitsOf(site, model);
  if (allowed.includes(representation.unit)) return;
  const kind = site.heads
    ? "a head component ([B, heads, T, d])"
    : site.recurrent
      ? "a recurrent cell (one call per time step)"
      : "a per-position component";
  throw new RangeError(
    `${where}.unit "${representation.unit}" does not fit component "${representation.component}", ` +
      `${kind}: expected ${allowed.map((u) => `"${u}"`).join(" or ")}`,
  );
}

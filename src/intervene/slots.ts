/**
 * An IntervenableModel's layout: each representation of its config resolved to a site of the
 * model and given its intervention (pyvene's wrapping, spec §3), in key order, with its group.
 * Built whole from a config, so a model takes a new layout only once every part of it is valid.
 */
import type { AnyModule } from "../nn/module.js";
import type { SiteMap } from "../models/sites.js";
import {
  intervenableConfig,
  representationConfig,
  representationKeys,
  representationList,
  type IntervenableConfig,
  type RepresentationConfig,
  type RepresentationInput,
} from "./config.js";
import { Intervention } from "./intervention.js";
import { LambdaIntervention, VanillaIntervention, type InterventionClass } from "./interventions/index.js";
import type { InterventionFunction } from "./interventions/lambda.js";
import { resolveSite, type ResolvedSite } from "./resolve-site.js";

export interface Slot {
  key: string;
  /** Position in key order: the index into every per-intervention list of a call. */
  index: number;
  representation: RepresentationConfig;
  intervention: Intervention;
  site: ResolvedSite;
  group: number;
}

export interface SlotLayout {
  config: IntervenableConfig;
  /** Intervention keys in the order of the config's representations. */
  representationKeys: string[];
  /** Intervention keys in the order of every per-intervention list (pyvene's sorted_keys). */
  keys: string[];
  slots: Slot[];
  groups: Slot[][];
}

/**
 * The layout of `config` on `model`. A key found in `existing` keeps that intervention object
 * (its weights included), so adding representations leaves the earlier ones as they were.
 */
export function layoutSlots(
  config: IntervenableConfig,
  model: AnyModule,
  sites: SiteMap | undefined,
  existing: ReadonlyMap<string, Intervention> = new Map(),
): SlotLayout {
  const reps = config.representations;
  const keys = representationKeys(reps);
  const links = new Map<number | string, Intervention>();
  const slots = reps.map((r, i): Slot => {
    const site = resolveSite(model, r, `representations[${i}]`, sites);
    const linked = r.interventionLinkKey !== null ? links.get(r.interventionLinkKey) : undefined;
    const intervention = linked ?? existing.get(keys[i]) ?? makeIntervention(config, r, i, site);
    if (r.interventionLinkKey !== null) links.set(r.interventionLinkKey, intervention);
    return { key: keys[i], index: i, representation: r, intervention, site, group: 0 };
  });
  const sorted = config.sortedKeys ?? keys;
  slots.sort((a, b) => sorted.indexOf(a.key) - sorted.indexOf(b.key));
  slots.forEach((s, i) => (s.index = i));
  return { config, representationKeys: keys, keys: [...sorted], slots, groups: makeGroups(slots) };
}

/**
 * `config` with `representations` added after its own (pyvene's add_intervention): each must name
 * its interventionType or intervention; the existing ones keep their keys, and their types are
 * written into them so that the config stays valid.
 */
export function withRepresentations(
  config: IntervenableConfig,
  representations: RepresentationInput | readonly RepresentationInput[],
): IntervenableConfig {
  const start = config.representations.length;
  const added = representationList(representations).map((r, i) => {
    const rep = representationConfig(r, start + i);
    if (rep.interventionType === null && rep.intervention === null)
      throw new TypeError(
        `addIntervention: representations[${start + i}] must give interventionType or intervention ` +
          "(pyvene: intervention_type should be provided)",
      );
    return rep;
  });
  if (added.length === 0) throw new RangeError("addIntervention: give at least one representation");
  const typed = config.representations.map((r, i) =>
    r.interventionType !== null || r.intervention !== null
      ? r
      : { ...r, interventionType: interventionClassOf(config, r, i) },
  );
  const combined = intervenableConfig({ representations: [...typed, ...added], mode: config.mode });
  const newKeys = representationKeys(combined.representations).slice(start);
  return { ...combined, sortedKeys: config.sortedKeys === null ? null : [...config.sortedKeys, ...newKeys] };
}

/** The class a representation without an intervention object is built from: its own, the config's, or Vanilla. */
export function interventionClassOf(config: IntervenableConfig, r: RepresentationConfig, i: number): InterventionClass {
  const types = config.interventionTypes;
  return r.interventionType ?? (Array.isArray(types) ? types[i] : types) ?? VanillaIntervention;
}

function makeIntervention(
  config: IntervenableConfig,
  r: RepresentationConfig,
  i: number,
  site: ResolvedSite,
): Intervention {
  if (r.intervention instanceof Intervention) return r.intervention;
  if (typeof r.intervention === "function") return new LambdaIntervention(r.intervention as InterventionFunction);
  const cls = interventionClassOf(config, r, i);
  return new cls({
    embedDim: site.dim === null ? null : site.dim * r.maxNumberOfUnits,
    subspacePartition: r.subspacePartition,
    sourceRepresentation: r.sourceRepresentation,
    lowRankDimension: r.lowRankDimension,
    latentDim: r.latentDim,
  });
}

/** Sites sharing a group key share one source; without group keys every intervention is its own group. */
function makeGroups(slots: Slot[]): Slot[][] {
  const withKey = slots.filter((s) => s.representation.groupKey !== null).length;
  if (withKey === 0) {
    slots.forEach((s, g) => (s.group = g));
    return slots.map((s) => [s]);
  }
  if (withKey !== slots.length)
    throw new TypeError("IntervenableConfig: groupKey must be given for every representation once it is given for one");
  const groupKeys = [...new Set(slots.map((s) => s.representation.groupKey!))].sort((a, b) => a - b);
  groupKeys.forEach((k, g) => {
    if (k !== g)
      throw new RangeError(
        `IntervenableConfig: group keys must be 0..${groupKeys.length - 1} (they index the sources), ` +
          `got ${JSON.stringify(groupKeys)}`,
      );
  });
  for (const s of slots) s.group = s.representation.groupKey!;
  return groupKeys.map((g) => slots.filter((s) => s.group === g));
}

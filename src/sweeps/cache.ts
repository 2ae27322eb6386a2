/**
 * TransformerLens's run_with_cache and run_with_hooks over the site port: one forward that keeps
 * the asked sites' values, addressable by TransformerLens hook name and by pyvene component, and
 * one forward with hooks that may replace values at named sites. Every hook goes through
 * readSite/writeSite and is removed before returning or throwing.
 */
import { type ResolvedSite, readSite, writeSite } from "../intervene/index.js";
import type { HookHandle } from "../nn/module.js";
import { type ModelInputs, type ModelOutput, PretrainedModel } from "../models/model.js";
import { describe, readOptions } from "../options/index.js";
import * as tv from "../tensor/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import { hookNames, mapsHookNames, type NamedSite, resolveHookName, swapHeadsAndPositions } from "./hook-names.js";

/** The names runWithCache and runWithHooks take, listed per model. */
export { hookNames } from "./hook-names.js";

/** A site to cache: a TransformerLens hook name, or a pyvene component at a layer. */
export type CacheAddress = string | { readonly layer: number; readonly component: string };

export interface CacheOptions {
  /**
   * What to keep: addresses, or a filter over the model's hook names (hookNames(model)).
   * Default: every hook name and every pyvene component at every layer.
   */
  names?: readonly CacheAddress[] | ((name: string) => boolean);
}

/** A forward's TransformerLens-style hook: returns the value's replacement, or undefined to leave it. */
export type ForwardHook = (value: Tensor, name: string) => Tensor | undefined;

export interface HooksOptions {
  /** [hook name or filter over hookNames(model), hook], applied in this order at each site. */
  fwdHooks: readonly (readonly [string | ((name: string) => boolean), ForwardHook])[];
}

/** The values one forward produced at the asked sites. Values are float32 views, not copies: do not mutate. */
export class ActivationCache {
  /** Built by runWithCache; `values` is keyed by site identity (siteKey). */
  constructor(
    private readonly model: PretrainedModel,
    private readonly values: ReadonlyMap<string, Tensor>,
  ) {}

  /** The value at a hook name, in TransformerLens's layout (heads as [B, T, H, d]). */
  get(name: string): Tensor {
    const named = resolveHookName(this.model, name, "cache.get");
    const value = this.lookup(named.site, `"${name}"`);
    return named.headsSecond ? swapHeadsAndPositions(value) : value;
  }

  /** The value of a pyvene component at a layer, as pyvene views it (heads as [B, H, T, d]). */
  site(layer: number, component: string): Tensor {
    let site: ResolvedSite;
    try {
      site = this.model.site(component, layer);
    } catch (e) {
      throw new RangeError(`cache.site: ${(e as Error).message}`);
    }
    return this.lookup(site, `layer ${layer} "${component}"`);
  }

  /** Whether the cache holds the value at a hook name. */
  has(name: string): boolean {
    return this.values.has(siteKey(resolveHookName(this.model, name, "cache.has").site));
  }

  /** The hook names the cache can answer (a value asked for by component answers its hook name too). */
  get names(): string[] {
    return this.values.size === 0 ? [] : safeHookNames(this.model).filter((name) => this.has(name));
  }

  /** How many values are kept. */
  get size(): number {
    return this.values.size;
  }

  private lookup(site: ResolvedSite, what: string): Tensor {
    const value = this.values.get(siteKey(site));
    if (value !== undefined) return value;
    throw new RangeError(
      `cache: ${what} was not kept (kept: ${this.names.join(", ") || `${this.size} component sites`}); ` +
        "add it to runWithCache's names",
    );
  }
}

/**
 * Runs the model once and keeps the value at each asked site. `inputs` are the model's inputs
 * (or token ids [B, T]). Each site must run once: recurrent sites (one call per step) are refused.
 */
export function runWithCache(
  model: PretrainedModel,
  inputs: ModelInputs | IntTensor,
  cacheOptions?: CacheOptions,
): { output: ModelOutput; cache: ActivationCache } {
  checkModel(model, "runWithCache");
  const { names } = readOptions<CacheOptions>(cacheOptions, ["names"], "runWithCache options");
  const asked = cacheRequests(model, names);
  const values = new Map<string, Tensor>();
  const handles: HookHandle[] = [];
  let output: ModelOutput;
  try {
    for (const [key, { site, label }] of asked) {
      const keep = (view: Tensor) => {
        if (values.has(key)) throw new RangeError(`runWithCache: ${label} ran twice in one forward; expected once`);
        values.set(key, view);
      };
      handles.push(readSite(model, site, keep));
    }
    output = tv.noGrad(() => model.run(modelInputs(inputs)));
  } finally {
    for (const handle of handles) handle.remove();
  }
  const missed = [...asked].filter(([key, { explicit }]) => explicit && !values.has(key)).map(([, r]) => r.label);
  if (missed.length > 0) {
    throw new RangeError(
      `runWithCache: ${missed.join(", ")} did not run in this forward ` +
        "(inputsEmbeds skips hook_embed, resumeFrom the blocks before it); drop them from names",
    );
  }
  return { output, cache: new ActivationCache(model, values) };
}

/** Runs the model once with `fwdHooks` at their sites, then removes them (also when it throws). */
export function runWithHooks(
  model: PretrainedModel,
  inputs: ModelInputs | IntTensor,
  hooksOptions: HooksOptions,
): ModelOutput {
  checkModel(model, "runWithHooks");
  const { fwdHooks } = readOptions<HooksOptions>(hooksOptions, ["fwdHooks"], "runWithHooks options");
  if (!Array.isArray(fwdHooks))
    throw new TypeError(`runWithHooks: fwdHooks must be a list of [name, hook] pairs, got ${describe(fwdHooks)}`);
  const installs = fwdHooks.flatMap((pair: unknown, i) => hookSites(model, pair, `runWithHooks fwdHooks[${i}]`));
  const handles: HookHandle[] = [];
  try {
    for (const { named, hook, where } of installs) {
      handles.push(writeSite(model, named.site, (view) => applyHook(named, hook, view, where)));
    }
    return model.run(modelInputs(inputs));
  } finally {
    for (const handle of handles) handle.remove();
  }
}

function hookSites(
  model: PretrainedModel,
  pair: unknown,
  where: string,
): { named: NamedSite; hook: ForwardHook; where: string }[] {
  if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[1] !== "function")
    throw new TypeError(`${where} must be a pair [name or filter, (value, name) => value], got ${describe(pair)}`);
  const [name, hook] = pair as [unknown, ForwardHook];
  if (typeof name === "function") {
    const chosen = hookNames(model, where).filter((n) => (name as (n: string) => boolean)(n));
    if (chosen.length === 0) throw new RangeError(`${where}: the filter matched no hook name of ${model.family}`);
    return chosen.map((n) => ({ named: resolveHookName(model, n, where), hook, where: `${where} at "${n}"` }));
  }
  return [{ named: resolveHookName(model, name, `${where}[0]`), hook, where: `${where} at "${name}"` }];
}

function applyHook(named: NamedSite, hook: ForwardHook, view: Tensor, where: string): Tensor | undefined {
  const value = named.headsSecond ? swapHeadsAndPositions(view) : view;
  const out = hook(value, named.name);
  if (out === undefined) return undefined;
  if (!(out instanceof Tensor) || out.shape.join() !== value.shape.join()) {
    const got = out instanceof Tensor ? `[${out.shape.join(", ")}]` : describe(out);
    throw new RangeError(
      `${where}: the hook returned ${got}; expected a Tensor [${value.shape.join(", ")}] or undefined`,
    );
  }
  return named.headsSecond ? swapHeadsAndPositions(out) : out;
}

interface Request {
  site: ResolvedSite;
  label: string;
  /** Listed by the caller, so it must run; filtered and default sites may not (hook_embed under inputsEmbeds). */
  explicit: boolean;
}

/** The sites to keep, by site identity, so a hook name and its component share one value. */
function cacheRequests(model: PretrainedModel, names: CacheOptions["names"]): Map<string, Request> {
  const asked = new Map<string, Request>();
  const add = (site: ResolvedSite, label: string, explicit: boolean) => {
    if (site.recurrent)
      throw new RangeError(`runWithCache: ${label} is a recurrent site (one call per step); collect it instead`);
    const key = siteKey(site);
    const earlier = asked.get(key);
    asked.set(key, { site, label: earlier?.label ?? label, explicit: explicit || (earlier?.explicit ?? false) });
  };
  if (names === undefined) {
    for (const name of safeHookNames(model)) add(resolveHookName(model, name, "runWithCache").site, `"${name}"`, false);
    for (const [component, at] of Object.entries(model.sites)) {
      if (at(0).recurrent) continue;
      for (let layer = 0; layer < model.numLayers; layer++) add(at(layer), `layer ${layer} "${component}"`, false);
    }
  } else if (typeof names === "function") {
    for (const name of hookNames(model, "runWithCache names")) {
      if (names(name)) add(resolveHookName(model, name, "runWithCache").site, `"${name}"`, false);
    }
  } else if (Array.isArray(names)) {
    names.forEach((address: unknown, i) => {
      const where = `runWithCache names[${i}]`;
      if (typeof address === "string") add(resolveHookName(model, address, where).site, `"${address}"`, true);
      else {
        const { site, label } = componentSite(model, address, where);
        add(site, label, true);
      }
    });
  } else {
    throw new TypeError(
      "runWithCache options.names must be a list of hook names or {layer, component}, or a filter (name) => boolean; " +
        `got ${describe(names)}`,
    );
  }
  return asked;
}

function componentSite(model: PretrainedModel, address: unknown, where: string): { site: ResolvedSite; label: string } {
  const expected = 'a hook name ("blocks.0.hook_resid_post") or {layer, component}';
  if (typeof address !== "object" || address === null) throw new TypeError(`${where} must be ${expected}`);
  const { layer, component } = readOptions<{ layer: number; component: string }>(
    address,
    ["layer", "component"],
    where,
  );
  if (typeof component !== "string" || typeof layer !== "number")
    throw new TypeError(`${where} must be ${expected}, got ${describe(address)}`);
  try {
    return { site: model.site(component, layer), label: `layer ${layer} "${component}"` };
  } catch (e) {
    throw new RangeError(`${where}: ${(e as Error).message}`);
  }
}

/** The hook names of a family that has them; none for the others (their sites are cached by component). */
function safeHookNames(model: PretrainedModel): string[] {
  return mapsHookNames(model) ? hookNames(model) : [];
}

/** A site's identity: module, hook and view. */
function siteKey(site: ResolvedSite): string {
  const part = site.fusedPart ? `${site.fusedPart.index}/${site.fusedPart.of}` : "";
  return `${site.module}|${site.hook}|${part}|${site.heads ?? ""}`;
}

function modelInputs(inputs: ModelInputs | IntTensor): ModelInputs {
  return inputs instanceof IntTensor ? { inputIds: inputs } : inputs;
}

function checkModel(model: unknown, where: string): asserts model is PretrainedModel {
  if (!(model instanceof PretrainedModel))
    throw new TypeError(`${where}: model must be a tsvene PretrainedModel, got ${describe(model)}`);
}

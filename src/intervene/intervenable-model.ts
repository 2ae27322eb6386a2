/**
 * IntervenableModel: pyvene's intervention model over a tsvene model. Sites are hooked for the
 * length of one call: getters gather units from source runs, setters replace the units of the
 * base run through the interventions, out of place. See DESIGN.md for where tsvene deliberately
 * differs from pyvene (per-example subspaces, linked interventions, unit "t", no sticky use_fast).
 */
import type { AnyModule, HookHandle } from "../nn/module.js";
import { batchSize, PretrainedModel, type ModelOutput } from "../models/model.js";
import { generate as generateTokens, type GenerateOptions, type GenerateOutput } from "../models/generate.js";
import type { SiteMap } from "../models/sites.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import {
  intervenableConfig,
  representationKeys,
  type IntervenableConfig,
  type IntervenableConfigInput,
  type RepresentationConfig,
  type RepresentationInput,
} from "./config.js";
import { Intervention } from "./intervention.js";
import { LambdaIntervention, VanillaIntervention } from "./interventions/index.js";
import type { InterventionFunction } from "./interventions/lambda.js";
import { broadcastLocations, broadcastSubspaces, type InterventionUnits, type Locations } from "./locations.js";
import { resolveSite, type ResolvedSite } from "./resolve-site.js";
import {
  FORWARD_OPTIONS,
  GENERATE_ONLY_OPTIONS,
  hopKey,
  locationsHint,
  readTimestepSelector,
  runInput,
  sourceRepresentationsByKey,
  sourcesPerGroup,
  type ForwardOptions,
  type IntervenedGenerateOptions,
  type RunInput,
  type TimestepSelector,
} from "./call-inputs.js";
import { exampleMask, listedAt, pairedSourceStep, rowOf, stepCollection, stepOf } from "./time-steps.js";
import { readSite, writeSite } from "./site-hooks.js";
import { flattenUnits, gatherUnits, scatterUnits } from "./units.js";
import * as tv from "../tensor/index.js";
import { readOptions } from "../options/index.js";

export interface ForwardResult<Out> {
  original: Out | null;
  intervened: Out;
  /** Activations of Collect interventions, in key order, one per hook call. */
  collected: Tensor[];
}

export interface IntervenableOptions {
  /** Sites for components of a model tsvene does not ship (or overrides). */
  sites?: SiteMap;
}

interface Slot {
  key: string;
  index: number;
  representation: RepresentationConfig;
  intervention: Intervention;
  site: ResolvedSite;
  group: number;
}

interface CallState {
  /** Source activations by key. */
  activations: Map<string, Tensor>;
  /** Unit "t": each key's source value [B, d] at every step of the source run. */
  stepRecords: Map<string, Map<number, Tensor>>;
  /** Unit "t" Collect: example i, list position j → the row collected there. */
  stepCollected: Map<string, Map<string, Tensor>>;
  collected: Map<string, Tensor[]>;
  handles: HookHandle[];
  /** In generate: how often each key's setter has run (pyvene's prompt/step gating, the selector's pass index). */
  setterCalls: Map<string, number>;
  /** In generate: pyvene's prompt gating, or the passes a timestepSelector chose. */
  generation: { interveneOnPrompt: boolean; selectStep: ((step: number) => boolean) | null } | null;
}

export class IntervenableModel<Out = ModelOutput> {
  readonly config: IntervenableConfig;
  /** Intervention keys in the order of every per-intervention list (pyvene's sorted_keys). */
  readonly keys: readonly string[];
  /** Intervention keys in the order of the config's representations. */
  readonly representationKeys: readonly string[];
  private readonly slots: Slot[];
  private readonly groups: Slot[][];

  constructor(
    config: IntervenableConfigInput | RepresentationInput | readonly RepresentationInput[],
    readonly model: AnyModule,
    options: IntervenableOptions = {},
  ) {
    const { sites } = readOptions<IntervenableOptions>(options, ["sites"], "IntervenableModel options");
    this.config = intervenableConfig(config);
    const reps = this.config.representations;
    const keys = representationKeys(reps);
    this.representationKeys = keys;
    const links = new Map<number | string, Intervention>();
    this.slots = reps.map((r, i) => {
      const where = `representations[${i}]`;
      const site = resolveSite(model, r, where, sites);
      const intervention = this.makeIntervention(r, i, site, links);
      return { key: keys[i], index: i, representation: r, intervention, site, group: 0 };
    });
    const sorted = this.config.sortedKeys ?? keys;
    this.keys = sorted;
    this.slots.sort((a, b) => sorted.indexOf(a.key) - sorted.indexOf(b.key));
    this.slots.forEach((s, i) => (s.index = i));
    this.groups = this.makeGroups();
    for (const p of model.namedParameters()) p[1].requireGrad(false);
  }

  private makeIntervention(
    r: RepresentationConfig,
    i: number,
    site: ResolvedSite,
    links: Map<number | string, Intervention>,
  ): Intervention {
    const linked = r.interventionLinkKey !== null ? links.get(r.interventionLinkKey) : undefined;
    if (linked) return linked;
    let intervention: Intervention;
    if (r.intervention instanceof Intervention) {
      intervention = r.intervention;
    } else if (typeof r.intervention === "function") {
      intervention = new LambdaIntervention(r.intervention as InterventionFunction);
    } else {
      const types = this.config.interventionTypes;
      const cls = r.interventionType ?? (Array.isArray(types) ? types[i] : types) ?? VanillaIntervention;
      intervention = new cls({
        embedDim: site.dim === null ? null : site.dim * r.maxNumberOfUnits,
        subspacePartition: r.subspacePartition,
        sourceRepresentation: r.sourceRepresentation,
        lowRankDimension: r.lowRankDimension,
        latentDim: r.latentDim,
      });
    }
    if (r.interventionLinkKey !== null) links.set(r.interventionLinkKey, intervention);
    return intervention;
  }

  /** Sites sharing a group key share one source; without group keys every intervention is its own group. */
  private makeGroups(): Slot[][] {
    const withKey = this.slots.filter((s) => s.representation.groupKey !== null).length;
    if (withKey === 0) {
      this.slots.forEach((s, g) => (s.group = g));
      return this.slots.map((s) => [s]);
    }
    if (withKey !== this.slots.length)
      throw new TypeError(
        "IntervenableConfig: groupKey must be given for every representation once it is given for one",
      );
    const groupKeys = [...new Set(this.slots.map((s) => s.representation.groupKey!))].sort((a, b) => a - b);
    groupKeys.forEach((k, g) => {
      if (k !== g)
        throw new RangeError(
          `IntervenableConfig: group keys must be 0..${groupKeys.length - 1} (they index the sources), ` +
            `got ${JSON.stringify(groupKeys)}`,
        );
    });
    for (const s of this.slots) s.group = s.representation.groupKey!;
    return groupKeys.map((g) => this.slots.filter((s) => s.group === g));
  }

  /** The interventions by key (linked keys share one object). */
  get interventions(): ReadonlyMap<string, Intervention> {
    return new Map(this.slots.map((s) => [s.key, s.intervention]));
  }

  get numGroups(): number {
    return this.groups.length;
  }

  /**
   * Runs the base with the interventions applied. `sources` has one entry per group (null: no
   * source run for that group); a single source serves every group.
   */
  forward(
    base: RunInput,
    sources: readonly (RunInput | null)[] | RunInput | null = null,
    options: ForwardOptions = {},
  ): ForwardResult<Out> {
    const opts = readOptions<ForwardOptions>(options, FORWARD_OPTIONS, "forward options", locationsHint);
    const baseInput = runInput(base, "base");
    const plan = this.prepare(batchSize(baseInput), sources, opts);
    const original = opts.outputOriginalOutput ? this.run(baseInput) : null;
    const state = newState(null);
    try {
      this.runInterventions(plan, state);
      const intervened = this.run(baseInput);
      return { original, intervened, collected: this.collectedInOrder(state) };
    } finally {
      for (const h of state.handles) h.remove();
    }
  }

  /**
   * Generates from the base prompt with interventions active at every step, with pyvene's gating:
   * by default (no locations, interveneOnPrompt false) each decoding step's new token is
   * intervened and the prompt pass is not; with interveneOnPrompt only the prompt pass is. A
   * timestepSelector replaces that gating: the interventions apply at the chosen passes only
   * (0 the prompt, k the k-th new token), at the given locations or, without them, everywhere.
   */
  generate(
    base: { inputIds: IntTensor; attentionMask?: IntTensor | null },
    sources: readonly (RunInput | null)[] | RunInput | null = null,
    options: IntervenedGenerateOptions,
  ): { original: GenerateOutput | null; generated: GenerateOutput; collected: Tensor[] } {
    if (!(this.model instanceof PretrainedModel)) throw new TypeError("generate needs one of tsvene's language models");
    const model = this.model;
    const opts = readOptions<IntervenedGenerateOptions>(
      options,
      [...FORWARD_OPTIONS, ...GENERATE_ONLY_OPTIONS],
      "generate options",
      locationsHint,
    );
    const prompt = readOptions<{ inputIds: IntTensor; attentionMask: IntTensor | null }>(
      base,
      ["inputIds", "attentionMask"],
      "generate base",
    );
    if (!(prompt.inputIds instanceof IntTensor))
      throw new TypeError("generate base: inputIds must be an IntTensor [B, T] of token ids");
    const {
      unitLocations: given,
      sourceRepresentations,
      subspaces,
      outputOriginalOutput,
      interveneOnPrompt = false,
      timestepSelector = null,
      ...decoding
    } = opts;
    const selectStep = timestepSelector === null ? null : this.readSelector(timestepSelector, interveneOnPrompt);
    const byPosition = this.config.mode === "parallel" && this.config.representations.every((r) => r.unit === "pos");
    if (given === undefined && !interveneOnPrompt && !byPosition && selectStep === null) {
      throw new TypeError(
        "generate: give unitLocations (the default, each new token's position, " +
          'is defined for parallel mode with unit "pos")',
      );
    }
    const unitLocations = given ?? (interveneOnPrompt || selectStep ? null : { base: 0 });
    const plan = this.prepare(prompt.inputIds.shape[0], sources, { unitLocations, sourceRepresentations, subspaces });
    const genOptions = { ...decoding, attentionMask: prompt.attentionMask ?? null } as GenerateOptions;
    const original = outputOriginalOutput ? generateTokens(model, prompt.inputIds, genOptions) : null;
    const state = newState({ interveneOnPrompt, selectStep });
    try {
      this.runInterventions(plan, state);
      const generated = generateTokens(model, prompt.inputIds, genOptions);
      return { original, generated, collected: this.collectedInOrder(state) };
    } finally {
      for (const h of state.handles) h.remove();
    }
  }

  private run(input: RunInput): Out {
    if (this.model instanceof PretrainedModel) {
      if (input instanceof Tensor || input instanceof IntTensor)
        return this.model.run({ inputIds: input as IntTensor }) as Out;
      return this.model.run(input) as Out;
    }
    return this.model.call(input) as Out;
  }

  private prepare(
    batch: number,
    sources: readonly (RunInput | null)[] | RunInput | null,
    options: ForwardOptions,
  ): Plan {
    const sourceList = sourcesPerGroup(sources, this.groups.length, batch);
    const given = sourceRepresentationsByKey(options.sourceRepresentations ?? null, this.keys);
    if (given !== null && sourceList.some((s) => s !== null)) {
      throw new TypeError(
        "forward: give sources or sourceRepresentations, not both (sourceRepresentations replace the source runs)",
      );
    }
    this.checkSourcesCover(sourceList, given);
    const locations = broadcastLocations(options.unitLocations, batch, this.hops());
    const subspaces = broadcastSubspaces(options.subspaces, batch, this.slots.length);
    return { locations, subspaces, sources: sourceList, given };
  }

  /** Every intervention that reads a source gets one: from its group's source run or from sourceRepresentations. */
  private checkSourcesCover(sources: readonly (RunInput | null)[], given: ReadonlyMap<string, Tensor> | null): void {
    for (const slot of this.slots) {
      if (sources[slot.group] !== null || given?.has(slot.key) || slot.intervention.sourceConstant) continue;
      throw new TypeError(
        `sources[${slot.group}] is null, but intervention ${slot.key} (${slot.intervention.typeName}) ` +
          "needs a source: " +
          `give a source input for group ${slot.group}, or sourceRepresentations for this key`,
      );
    }
  }

  /** The unit-locations keys of a call and how many interventions each key's lists cover. */
  private hops(): Map<string, number> {
    if (this.config.mode === "parallel") return new Map([["sources->base", this.slots.length]]);
    return new Map(this.groups.map((group, g) => [hopKey(g, this.groups.length), group.length]));
  }

  /** Runs the source passes and leaves the setters registered for the base pass. */
  private runInterventions(plan: Plan, state: CallState): void {
    if (this.config.mode === "parallel") this.parallel(plan, state);
    else this.serial(plan, state);
  }

  private parallel(plan: Plan, state: CallState): void {
    const [srcSide, baseSide] = plan.locations.get("sources->base")!;
    if (plan.given) {
      for (const [k, t] of plan.given) state.activations.set(k, t);
    } else {
      this.groups.forEach((group, g) => {
        const source = plan.sources[g];
        if (source === null) return;
        const getters = group.map((slot) => this.getter(slot, srcSide?.[slot.index] ?? null, state));
        try {
          this.run(source);
        } finally {
          for (const h of getters) h.remove();
        }
      });
    }
    for (const slot of this.slots) {
      state.handles.push(
        this.setter(
          slot,
          baseSide?.[slot.index] ?? null,
          srcSide?.[slot.index] ?? null,
          plan.subspaces?.[slot.index] ?? null,
          state,
        ),
      );
    }
  }

  /**
   * Serial mode: group g's source runs with the setters placed since the previous source run, so
   * each source carries the previous edits forward; the setters placed after the last source run
   * act on the base. Every hook goes into state.handles as it is made, so none outlives the call.
   */
  private serial(plan: Plan, state: CallState): void {
    let active: HookHandle[] = [];
    this.groups.forEach((group, g) => {
      const [sourceSide, baseSide] = plan.locations.get(hopKey(g, this.groups.length))!;
      const source = plan.sources[g];
      if (plan.given) {
        for (const slot of group) {
          const t = plan.given.get(slot.key);
          if (t) state.activations.set(slot.key, t);
        }
      } else if (source !== null) {
        const getters = group.map((slot, j) => this.getter(slot, sourceSide?.[j] ?? null, state));
        try {
          this.run(source);
        } finally {
          for (const h of getters) h.remove();
        }
        for (const h of active) h.remove();
        active = [];
      }
      for (const [j, slot] of group.entries()) {
        const handle = this.setter(
          slot,
          baseSide?.[j] ?? null,
          sourceSide?.[j] ?? null,
          plan.subspaces?.[slot.index] ?? null,
          state,
        );
        state.handles.push(handle);
        active.push(handle);
      }
    });
  }

  /** Hooks the slot's site to record the gathered source units (for unit "t": the value at every step). */
  private getter(slot: Slot, units: InterventionUnits, state: CallState): HookHandle {
    const where = `unitLocations (source side, intervention ${slot.index}: ${slot.key})`;
    const steps = new Map<number, Tensor>();
    if (slot.representation.unit === "t") state.stepRecords.set(slot.key, steps);
    let calls = 0;
    const record = (view: Tensor, context: unknown) => {
      if (slot.representation.unit === "t") steps.set(stepOf(context, calls++), view);
      else state.activations.set(slot.key, gatherUnits(view, slot.representation.unit, units, where));
    };
    return readSite(this.model, slot.site, record, { moduleInput: slot.intervention.readsModuleInput });
  }

  /** Hooks the slot's site to replace its units through the intervention. */
  private setter(
    slot: Slot,
    units: InterventionUnits,
    sourceUnits: InterventionUnits,
    subspaces: unknown,
    state: CallState,
  ): HookHandle {
    const where = `unitLocations (base side, intervention ${slot.index}: ${slot.key})`;
    let calls = 0;
    const apply = (view: Tensor, context: unknown): Tensor | undefined => {
      if (slot.representation.unit === "t")
        return this.applyAtStep(slot, view, stepOf(context, calls++), units, sourceUnits, subspaces, state, where);
      if (!this.passesGate(slot, units, state)) return undefined;
      const selected = gatherUnits(view, slot.representation.unit, units, where);
      const source = state.activations.get(slot.key) ?? null;
      if (slot.intervention.collects) {
        const collected = this.intervene(slot.intervention, selected, null, subspaces);
        if (collected) state.collected.set(slot.key, [...(state.collected.get(slot.key) ?? []), collected]);
        return undefined;
      }
      const result = this.intervene(slot.intervention, selected, source, subspaces);
      if (result === null) return undefined;
      return scatterUnits(view, slot.representation.unit, units, result, where);
    };
    return writeSite(this.model, slot.site, apply);
  }

  /**
   * Unit "t": at a listed base step, the listed examples take the intervention's result, the
   * source being the source run's value at the paired source step; other examples and steps
   * are untouched. Collect records the rows at the listed steps.
   */
  private applyAtStep(
    slot: Slot,
    view: Tensor,
    step: number,
    units: InterventionUnits,
    sourceUnits: InterventionUnits,
    subspaces: unknown,
    state: CallState,
    where: string,
  ): Tensor | undefined {
    const batch = view.shape[0];
    const listed = listedAt(units, step, batch, where);
    if (listed.every((j) => j < 0)) return undefined;
    if (slot.intervention.collects) {
      const rows = state.stepCollected.get(slot.key) ?? new Map<string, Tensor>();
      state.stepCollected.set(slot.key, rows);
      listed.forEach((j, i) => j >= 0 && rows.set(`${i},${j}`, rowOf(view, i)));
      return undefined;
    }
    let source = state.activations.get(slot.key) ?? null;
    const record = state.stepRecords.get(slot.key);
    if (source === null && record) {
      source = tv.concat(
        listed.map((j, i) => {
          if (j < 0) return rowOf(view, i);
          const sourceStep = pairedSourceStep(sourceUnits, i, j, batch, where);
          const recorded = record.get(sourceStep);
          if (!recorded) throw new RangeError(`${where}: the source run has no step ${sourceStep}`);
          return rowOf(recorded, i);
        }),
        0,
      );
    }
    const result = this.intervene(slot.intervention, view, source, subspaces);
    if (result === null) return undefined;
    return tv.where(exampleMask(listed), result, view);
  }

  /** The timestepSelector, checked; it counts forward passes, which unit "t" sites do not see. */
  private readSelector(selector: TimestepSelector, interveneOnPrompt: boolean): (step: number) => boolean {
    if (interveneOnPrompt)
      throw new TypeError(
        "generate options: give timestepSelector or interveneOnPrompt (select pass 0 for the prompt)",
      );
    if (this.config.representations.some((r) => r.unit === "t"))
      throw new TypeError('generate options: timestepSelector is not defined for unit "t" (recurrent time steps)');
    return readTimestepSelector(selector);
  }

  /**
   * pyvene's generation gating: count prompt/step calls and skip where interveneOnPrompt says so;
   * with a timestepSelector, count every pass and apply where it chooses.
   */
  private passesGate(slot: Slot, units: InterventionUnits, state: CallState): boolean {
    if (state.generation === null) return true;
    const calls = state.setterCalls.get(slot.key) ?? 0;
    const { selectStep } = state.generation;
    if (selectStep !== null) {
      state.setterCalls.set(slot.key, calls + 1);
      return selectStep(calls);
    }
    if (units === null) return true;
    const isPrompt = calls === 0;
    const { interveneOnPrompt } = state.generation;
    if (!interveneOnPrompt || isPrompt) state.setterCalls.set(slot.key, calls + 1);
    return interveneOnPrompt === isPrompt;
  }

  /** pyvene's do_intervention: flatten multi-unit inputs for distributed kinds, call, unflatten. */
  private intervene(
    intervention: Intervention,
    base: Tensor,
    source: Tensor | null,
    subspaces: unknown,
  ): Tensor | null {
    if (!intervention.distributed || base.rank <= 2) return intervention.apply(base, { source, subspaces });
    const { flat, unflatten } = flattenUnits(base);
    const flatSource = source !== null && source.rank === base.rank ? flattenUnits(source).flat : source;
    const result = intervention.apply(flat, { source: flatSource, subspaces });
    return result === null ? null : unflatten(result);
  }

  private collectedInOrder(state: CallState): Tensor[] {
    return this.keys.flatMap((k) => {
      const rows = state.stepCollected.get(k);
      if (!rows) return state.collected.get(k) ?? [];
      return [stepCollection(rows)];
    });
  }

  // Training support (spec §3.5).

  /** The trainable interventions in key order, a linked (shared) one once, under its first key. */
  private trainableInterventions(): [string, Intervention][] {
    const seen = new Set<Intervention>();
    return this.slots.flatMap((s): [string, Intervention][] => {
      if (!s.intervention.trainable || seen.has(s.intervention)) return [];
      seen.add(s.intervention);
      return [[s.key, s.intervention]];
    });
  }

  /**
   * What an optimiser trains, by name: `{key}.{name}` for the parameters of each trainable
   * intervention, then `model.{name}` for the model's parameters that require a gradient.
   * Unlike pyvene, a linked intervention is listed once (pyvene repeats it per key, so PyTorch
   * would update it twice per step) and tensors that never take a gradient (rotation bases,
   * intervention_population) are left out.
   */
  namedParameters(): [string, Tensor][] {
    const interventions = this.trainableInterventions().flatMap(([key, iv]) =>
      iv.trainableParameters().map(([name, p]): [string, Tensor] => [`${key}.${name}`, p]),
    );
    const model = this.model
      .namedParameters()
      .filter(([, p]) => p.requiresGrad)
      .map(([name, p]): [string, Tensor] => [`model.${name}`, p]);
    return [...interventions, ...model];
  }

  /** The tensors of namedParameters(), for an optimiser. */
  getTrainableParameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /**
   * pyvene's count_parameters: the values of the trainable interventions' parameters that
   * require a gradient, a linked group counted once; with includeModel, plus the model's.
   */
  countParameters(options: { includeModel?: boolean } = {}): number {
    const interventions = this.trainableInterventions().reduce((n, [, iv]) => n + iv.countParameters(), 0);
    if (!options.includeModel) return interventions;
    return this.model.parameters().reduce((n, p) => n + (p.requiresGrad ? p.size : 0), interventions);
  }

  /**
   * Drops the gradients of everything getTrainableParameters() returns. (pyvene clears only the
   * interventions', so under IIT the model's gradients pile up across train_alignment steps.)
   */
  zeroGrad(): void {
    for (const p of this.getTrainableParameters()) p.zeroGrad();
  }

  /** Sets the temperature of every BoundlessRotatedSpace and SigmoidMask intervention, as pyvene's set_temperature. */
  setTemperature(t: number | Tensor): void {
    for (const [, iv] of this.trainableInterventions()) {
      if (iv.annealable) iv.setTemperature(t);
    }
  }

  /**
   * Lets the model's own weights learn (interchange intervention training).
   * tsvene models have no train/eval mode to switch.
   */
  enableModelGradients(): void {
    this.model.requireGrad(true);
  }

  /** Freezes the model's weights again, as at construction. */
  disableModelGradients(): void {
    this.model.requireGrad(false);
  }
}

interface Plan {
  locations: Locations;
  subspaces: unknown[] | null;
  sources: (RunInput | null)[];
  given: Map<string, Tensor> | null;
}

function newState(generation: CallState["generation"]): CallState {
  return {
    activations: new Map(),
    stepRecords: new Map(),
    stepCollected: new Map(),
    collected: new Map(),
    handles: [],
    setterCalls: new Map(),
    generation,
  };
}

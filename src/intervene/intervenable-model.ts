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
  type IntervenableConfig,
  type IntervenableConfigInput,
  type RepresentationInput,
} from "./config.js";
import { doIntervention } from "./do-intervention.js";
import { type Intervention, InterventionOutput } from "./intervention.js";
import { broadcastLocations, broadcastSubspaces, type InterventionUnits, type Locations } from "./locations.js";
import { layoutSlots, withRepresentations, type Slot, type SlotLayout } from "./slots.js";
import {
  additionalKwargs,
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
import { gatherUnits, scatterUnits } from "./units.js";
import * as tv from "../tensor/index.js";
import { readOptions } from "../options/index.js";

export interface ForwardResult<Out> {
  original: Out | null;
  intervened: Out;
  /** Activations of Collect interventions, in key order, one per hook call. */
  collected: Tensor[];
  /** What interventions returned as InterventionOutput in this call, in the order they ran (pyvene's list). */
  fullInterventionOutputs: InterventionOutput[];
}

export interface IntervenableOptions {
  /** Sites for components of a model tsvene does not ship (or overrides). */
  sites?: SiteMap;
  /**
   * pyvene's use_fast, for batches whose locations and subspaces are the same in every example:
   * unit "pos" reads and writes example 0's positions in every example, and subspaces are
   * example 0's. (pyvene reads each example's own positions but writes at example 0's.)
   */
  useFast?: boolean;
  /**
   * pyvene's as_adaptor: Collect and source-constant interventions also get the site module's
   * input at the same units, as `kwargs.args` (what adaptors such as pyreft's read).
   */
  asAdaptor?: boolean;
}

interface CallState {
  /** Source activations by key. */
  activations: Map<string, Tensor>;
  /** Unit "t": each key's source value [B, d] at every step of the source run. */
  stepRecords: Map<string, Map<number, Tensor>>;
  /** Unit "t" Collect: example i, list position j → the row collected there. */
  stepCollected: Map<string, Map<string, Tensor>>;
  collected: Map<string, Tensor[]>;
  fullInterventionOutputs: InterventionOutput[];
  /** The call's interventionAdditionalKwargs. */
  kwargs: Readonly<Record<string, unknown>>;
  handles: HookHandle[];
  /** In generate: how often each key's setter has run (pyvene's prompt/step gating, the selector's pass index). */
  setterCalls: Map<string, number>;
  /** In generate: pyvene's prompt gating, or the passes a timestepSelector chose. */
  generation: { interveneOnPrompt: boolean; selectStep: ((step: number) => boolean) | null } | null;
}

export class IntervenableModel<Out = ModelOutput> {
  readonly useFast: boolean;
  readonly asAdaptor: boolean;
  private readonly sites: SiteMap | undefined;
  private layout: SlotLayout;
  /** The state of the call under way, or else of the last one. */
  private lastCall: CallState | null = null;

  constructor(
    config: IntervenableConfigInput | RepresentationInput | readonly RepresentationInput[],
    readonly model: AnyModule,
    options: IntervenableOptions = {},
  ) {
    const opts = readOptions<IntervenableOptions>(
      options,
      ["sites", "useFast", "asAdaptor"],
      "IntervenableModel options",
    );
    for (const flag of ["useFast", "asAdaptor"] as const) {
      if (opts[flag] !== undefined && typeof opts[flag] !== "boolean")
        throw new TypeError(`IntervenableModel options: ${flag} must be true or false, got ${String(opts[flag])}`);
    }
    this.useFast = opts.useFast ?? false;
    this.asAdaptor = opts.asAdaptor ?? false;
    this.sites = opts.sites;
    this.layout = layoutSlots(intervenableConfig(config), model, this.sites);
    for (const p of model.namedParameters()) p[1].requireGrad(false);
  }

  get config(): IntervenableConfig {
    return this.layout.config;
  }

  /** Intervention keys in the order of every per-intervention list (pyvene's sorted_keys). */
  get keys(): readonly string[] {
    return this.layout.keys;
  }

  /** Intervention keys in the order of the config's representations. */
  get representationKeys(): readonly string[] {
    return this.layout.representationKeys;
  }

  private get slots(): Slot[] {
    return this.layout.slots;
  }

  private get groups(): Slot[][] {
    return this.layout.groups;
  }

  /**
   * Adds representations (the forms a config takes; each names its interventionType or
   * intervention, as pyvene's add_intervention requires) after the existing ones, which keep
   * their keys, interventions and weights. Nothing changes unless every new one is valid.
   */
  addIntervention(representations: RepresentationInput | readonly RepresentationInput[]): void {
    const config = withRepresentations(this.config, representations);
    this.layout = layoutSlots(config, this.model, this.sites, this.interventions);
  }

  /**
   * pyvene's get_cached_activations: by key, the source activations of the call under way or else
   * of the last one (gathered from a source run, or given as sourceRepresentations), and for a
   * Collect key the list of what it collected. pyvene empties its cache when a call ends; tsvene
   * keeps the last call's until the next begins. Unit "t" source steps are not listed.
   */
  getCachedActivations(): Map<string, Tensor | Tensor[]> {
    const state = this.lastCall;
    if (state === null) return new Map();
    const cached = new Map<string, Tensor | Tensor[]>(state.activations);
    for (const key of this.keys) {
      const collected = collectedFor(state, key);
      if (collected.length > 0) cached.set(key, collected);
    }
    return cached;
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
    const state = this.newCall(plan, null);
    try {
      this.runInterventions(plan, state);
      const intervened = this.run(baseInput);
      const { fullInterventionOutputs } = state;
      return { original, intervened, collected: this.collectedInOrder(state), fullInterventionOutputs };
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
  ): {
    original: GenerateOutput | null;
    generated: GenerateOutput;
    collected: Tensor[];
    fullInterventionOutputs: InterventionOutput[];
  } {
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
      interventionAdditionalKwargs,
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
    const plan = this.prepare(prompt.inputIds.shape[0], sources, {
      unitLocations,
      sourceRepresentations,
      subspaces,
      interventionAdditionalKwargs,
    });
    const genOptions = { ...decoding, attentionMask: prompt.attentionMask ?? null } as GenerateOptions;
    const original = outputOriginalOutput ? generateTokens(model, prompt.inputIds, genOptions) : null;
    const state = this.newCall(plan, { interveneOnPrompt, selectStep });
    try {
      this.runInterventions(plan, state);
      const generated = generateTokens(model, prompt.inputIds, genOptions);
      const { fullInterventionOutputs } = state;
      return { original, generated, collected: this.collectedInOrder(state), fullInterventionOutputs };
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
    const kwargs = additionalKwargs(options.interventionAdditionalKwargs, this.asAdaptor);
    if ((this.asAdaptor || Object.keys(kwargs).length > 0) && !this.slots.some(takesKwargs)) {
      throw new TypeError(
        `${this.asAdaptor ? "asAdaptor" : "interventionAdditionalKwargs"}: the extra arguments reach only ` +
          "Collect and source-constant interventions (as in pyvene), and this model has none",
      );
    }
    return { locations, subspaces, sources: sourceList, given, kwargs };
  }

  /** A fresh state for a call, which getCachedActivations reads from now on. */
  private newCall(plan: Plan, generation: CallState["generation"]): CallState {
    this.lastCall = {
      activations: new Map(),
      stepRecords: new Map(),
      stepCollected: new Map(),
      collected: new Map(),
      fullInterventionOutputs: [],
      kwargs: plan.kwargs,
      handles: [],
      setterCalls: new Map(),
      generation,
    };
    return this.lastCall;
  }

  /** With useFast, unit "pos" takes example 0's positions in every example (one row broadcasts). */
  private fastUnits(slot: Slot, units: InterventionUnits): InterventionUnits {
    if (!this.useFast || slot.representation.unit !== "pos" || units === null) return units;
    const [first] = units as unknown[][];
    return first.every(Number.isInteger) ? [first as number[]] : units;
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
  private getter(slot: Slot, sourceUnits: InterventionUnits, state: CallState): HookHandle {
    const units = this.fastUnits(slot, sourceUnits);
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
    baseUnits: InterventionUnits,
    sourceUnits: InterventionUnits,
    subspaces: unknown,
    state: CallState,
  ): HookHandle {
    const where = `unitLocations (base side, intervention ${slot.index}: ${slot.key})`;
    const units = this.fastUnits(slot, baseUnits);
    const { unit } = slot.representation;
    let calls = 0;
    const apply = (view: Tensor, context: unknown, moduleInput?: Tensor): Tensor | undefined => {
      if (unit === "t") {
        const step = stepOf(context, calls++);
        return this.applyAtStep(slot, view, moduleInput, step, units, sourceUnits, subspaces, state, where);
      }
      if (!this.passesGate(slot, units, state)) return undefined;
      const selected = gatherUnits(view, unit, units, where);
      const input = moduleInput && gatherUnits(moduleInput, unit, units, `${where}, module input`);
      const source = slot.intervention.collects ? null : (state.activations.get(slot.key) ?? null);
      const result = this.intervene(slot, selected, source, subspaces, input, state);
      if (slot.intervention.collects) {
        if (result) state.collected.set(slot.key, [...(state.collected.get(slot.key) ?? []), result]);
        return undefined;
      }
      if (result === null) return undefined;
      return scatterUnits(view, unit, units, result, where);
    };
    return writeSite(this.model, slot.site, apply, { moduleInput: this.asAdaptor && takesKwargs(slot) });
  }

  /**
   * Unit "t": at a listed base step, the listed examples take the intervention's result, the
   * source being the source run's value at the paired source step; other examples and steps
   * are untouched. Collect records the rows at the listed steps.
   */
  private applyAtStep(
    slot: Slot,
    view: Tensor,
    moduleInput: Tensor | undefined,
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
    const result = this.intervene(slot, view, source, subspaces, moduleInput, state);
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

  /**
   * The slot's intervention on the gathered units (pyvene's do_intervention), with this model's
   * useFast and, for the interventions pyvene gives them to, the call's extra arguments and under
   * asAdaptor the module's input at the same units as `args`. An InterventionOutput is recorded
   * and its output used (pyvene unwraps it only for source-constant interventions).
   */
  private intervene(
    slot: Slot,
    base: Tensor,
    source: Tensor | null,
    subspaces: unknown,
    moduleInput: Tensor | undefined,
    state: CallState,
  ): Tensor | null {
    const kwargs = !takesKwargs(slot)
      ? undefined
      : moduleInput === undefined
        ? state.kwargs
        : { ...state.kwargs, args: moduleInput };
    const result = doIntervention(slot.intervention, base, { source, subspaces, useFast: this.useFast, kwargs });
    if (!(result instanceof InterventionOutput)) return result;
    state.fullInterventionOutputs.push(result);
    return result.output;
  }

  private collectedInOrder(state: CallState): Tensor[] {
    return this.keys.flatMap((k) => collectedFor(state, k));
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
  kwargs: Readonly<Record<string, unknown>>;
}

/** Whether pyvene passes the extra arguments (and the adaptor's input) to the slot's intervention. */
function takesKwargs(slot: Slot): boolean {
  return slot.intervention.collects || slot.intervention.sourceConstant;
}

/** What a Collect key gathered in a call: one tensor per hook call, or for unit "t" the rows at the listed steps. */
function collectedFor(state: CallState, key: string): Tensor[] {
  const rows = state.stepCollected.get(key);
  if (!rows) return state.collected.get(key) ?? [];
  return [stepCollection(rows)];
}

/**
 * What one IntervenableModel call takes, read and checked before any hook is placed: the options
 * (strict, pyvene's snake_case read), the base and source inputs, one source per group, the
 * ready-made source representations by key, and the serial hops' keys.
 */
import { batchSize, type ModelInputs } from "../models/model.js";
import { GENERATE_OPTIONS, type GenerateOptions } from "../models/generate.js";
import { describe, OptionError, readOptions } from "../options/index.js";
import { IntTensor, Tensor } from "../tensor/index.js";
import type { UnitLocationsInput } from "./locations.js";

/** What a source or base run takes: model inputs for tsvene's families, the input tensor for a plain module. */
export type RunInput = ModelInputs | Tensor | IntTensor;

/**
 * The forward passes of a generation at which interventions apply (pyvene's unmerged
 * timestep_selector): pass 0 reads the prompt, pass k the k-th new token. A list of pass indices,
 * or a function of the pass index.
 */
export type TimestepSelector = readonly number[] | ((step: number) => boolean);

/** What `generate` takes besides the forward options (the prompt's mask comes with the base). */
export type IntervenedGenerateOptions = ForwardOptions &
  Omit<GenerateOptions, "attentionMask"> & { interveneOnPrompt?: boolean; timestepSelector?: TimestepSelector | null };

export const FORWARD_OPTIONS = [
  "unitLocations",
  "sourceRepresentations",
  "subspaces",
  "outputOriginalOutput",
  "interventionAdditionalKwargs",
] as const satisfies readonly (keyof ForwardOptions)[];
/** The decoding options of tv.generate, less the mask (it comes with the base), and the gating by pass. */
export const GENERATE_ONLY_OPTIONS: readonly (keyof IntervenedGenerateOptions)[] = [
  ...GENERATE_OPTIONS.filter((name) => name !== "attentionMask"),
  "interveneOnPrompt",
  "timestepSelector",
];

/** The selector as a test of the pass index; a function must answer true or false. */
export function readTimestepSelector(selector: TimestepSelector): (step: number) => boolean {
  const what = "generate options: timestepSelector";
  if (typeof selector === "function") {
    return (step) => {
      const chosen = selector(step);
      if (typeof chosen !== "boolean")
        throw new TypeError(`${what} must return true or false, got ${describe(chosen)} for pass ${step}`);
      return chosen;
    };
  }
  if (!Array.isArray(selector) || !selector.every((s) => Number.isInteger(s) && s >= 0)) {
    throw new TypeError(
      `${what} must be a list of pass indices (non-negative integers: 0 the prompt, k the k-th new token) ` +
        `or a function (step) => boolean, got ${describe(selector)}`,
    );
  }
  const steps = new Set(selector);
  return (step) => steps.has(step);
}
/** What a base or source run may carry (the model's own options such as resumeFrom are not for callers here). */
export const RUN_INPUTS = [
  "inputIds",
  "inputsEmbeds",
  "attentionMask",
  "positionIds",
  "outputHiddenStates",
  "lastPositionLogits",
] as const satisfies readonly (keyof ModelInputs)[];

/** pyvene passes locations positionally; a locations key among the options means they were meant for unitLocations. */
export function locationsHint(key: string): string | undefined {
  if (key.includes("->") || key === "base")
    return `unit locations go under unitLocations, e.g. {unitLocations: {"${key}": …}}`;
  return undefined;
}

export interface ForwardOptions {
  unitLocations?: UnitLocationsInput | null;
  /** Ready-made source activations instead of source runs: one tensor for all, one per intervention, or by key. */
  sourceRepresentations?: Tensor | readonly (Tensor | null)[] | Readonly<Record<string, Tensor>> | null;
  subspaces?: unknown;
  /** Also run the model without interventions first and return its output. */
  outputOriginalOutput?: boolean;
  /** Extra arguments for Collect and source-constant interventions, as pyvene's intervention_additional_kwargs. */
  interventionAdditionalKwargs?: Readonly<Record<string, unknown>> | null;
}

/**
 * The call's interventionAdditionalKwargs, checked: a plain object, without `args` when the model
 * is an adaptor (asAdaptor fills `args` with the module's input; pyvene overwrites a caller's).
 */
export function additionalKwargs(value: unknown, asAdaptor: boolean): Readonly<Record<string, unknown>> {
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    throw new OptionError(
      `interventionAdditionalKwargs must be a plain object of named arguments, got ${describe(value)}`,
    );
  }
  if (asAdaptor && Object.hasOwn(value, "args"))
    throw new OptionError(
      "interventionAdditionalKwargs.args: asAdaptor passes the module's input as args; give it another name",
    );
  return { ...value };
}

/** One source per group (a single source serves every group), each checked and read as a run input. */
export function sourcesPerGroup(
  sources: readonly (RunInput | null)[] | RunInput | null,
  groups: number,
  batch: number,
): (RunInput | null)[] {
  const list =
    sources === null || sources === undefined
      ? new Array<RunInput | null>(groups).fill(null)
      : Array.isArray(sources)
        ? [...sources]
        : [sources as RunInput];
  if (list.length === 1 && groups > 1) while (list.length < groups) list.push(list[0]);
  if (list.length !== groups) {
    throw new RangeError(
      `sources: ${list.length} sources given for ${groups} intervention groups ` +
        "(expected one per group, or one for all)",
    );
  }
  return list.map((s, g) => {
    if (s === null || s === undefined) return null;
    const input = runInput(s, `sources[${g}]`);
    if (batchSize(input) !== batch)
      throw new RangeError(`sources[${g}]: batch size ${batchSize(input)} does not match the base's ${batch}`);
    return input;
  });
}

/** sourceRepresentations by intervention key: one tensor for all, a list in key order, or an object by key. */
export function sourceRepresentationsByKey(
  reps: ForwardOptions["sourceRepresentations"],
  keys: readonly string[],
): Map<string, Tensor> | null {
  if (reps === null || reps === undefined) return null;
  if (reps instanceof Tensor) return new Map(keys.map((k) => [k, reps]));
  if (Array.isArray(reps)) {
    if (reps.length !== keys.length)
      throw new RangeError(
        `sourceRepresentations: ${reps.length} tensors for ${keys.length} interventions ` +
          "(expected one per intervention, in key order)",
      );
    return new Map(reps.flatMap((t, i) => (t === null ? [] : [[keys[i], t] as [string, Tensor]])));
  }
  if (typeof reps === "object") {
    const entries = Object.entries(reps as Record<string, Tensor>);
    for (const [k, t] of entries) {
      if (!keys.includes(k))
        throw new RangeError(`sourceRepresentations: "${k}" is not an intervention key (keys: ${keys.join(", ")})`);
      if (!(t instanceof Tensor)) throw new TypeError(`sourceRepresentations["${k}"] must be a Tensor`);
    }
    return new Map(entries);
  }
  throw new TypeError(
    "sourceRepresentations must be a Tensor, a list of Tensors (one per intervention) " +
      "or an object keyed by intervention key",
  );
}

/** The key of serial hop g among `groups` groups. */
export function hopKey(g: number, groups: number): string {
  return g === groups - 1 ? `source_${g}->base` : `source_${g}->source_${g + 1}`;
}

/** A base or source as the model takes it: a tensor, or model inputs with camelCase (or pyvene's snake_case) keys. */
export function runInput(input: RunInput, what: string): RunInput {
  if (input instanceof Tensor || input instanceof IntTensor) return input;
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new OptionError(
      `${what} must be model inputs {inputIds, attentionMask?, …} or a tensor, got ${describe(input)}`,
    );
  }
  return readOptions<ModelInputs>(input, RUN_INPUTS, what) as ModelInputs;
}

/**
 * pyvene's `CausalModel`: a structural causal model over discrete variables, used as the
 * high-level hypothesis in interchange intervention training and distributed alignment search.
 * It runs forward under interventions, runs interchange interventions, samples inputs and
 * interventions, finds live causal paths, and generates factual and counterfactual datasets.
 *
 * Randomness comes from a seeded `Generator` (the `generator` option, else `defaultGenerator`),
 * so the same seed gives the same datasets. Where pyvene misbehaves (spec §11.5 item 35), tsvene
 * does what a pyvene user would expect:
 * - The caller's objects are never changed: `variables` is not sorted in place, `positions` is
 *   per model (pyvene shares one mutable default `pos` across models), `equivalenceClasses` is
 *   copied before it is filled in, and each sampled input is a fresh object (pyvene's
 *   tree-balanced sampler returns one shared dict, mutable default argument, from every call).
 * - Definitions are checked: unknown parents, missing values or functions, cycles (pyvene loops
 *   forever), timesteps that do not follow the parents; each error names the variable.
 *   Interventions naming an unknown variable are an error (pyvene ignores them silently).
 * - `sampleIntervention` on a model without intermediate variables is an error (pyvene hangs).
 *   It has no `mandatory` argument: pyvene accepts one and ignores it.
 * - Samplers take one request object `{ generator, outputVariable?, outputValue? }`. The default
 *   sampler (`sampleInput`) honours the request by rejection sampling, so the default works for
 *   counterfactual datasets (pyvene's default fails with a TypeError there).
 *   `sampleInputTreeBalanced` retries until the requested value really holds, which matters
 *   only when branches share an ancestor (pyvene's result can then miss the value).
 * - Rejection sampling (mandatory conditions, filters, requested values) gives up with an error
 *   after 10,000 consecutive rejections instead of looping forever.
 * - Counterfactual datasets go through the custom `inputFunction` / `outputFunction` (pyvene
 *   ignores them there) and hold exactly `size` examples: the last batch is cut short (pyvene
 *   appends whole batches and overshoots). Raw examples list only the real sources; tensor
 *   examples pad `sourceInputIds` with zeros to the number of intermediate variables, as pyvene
 *   does, so batches stack. Each example also carries the sampled `intervention`.
 * - The filter of a factual dataset sees the total setting (pyvene passes only the sampled
 *   inputs, so its own path and partial filters cannot see intermediate variables there); the
 *   filter of a counterfactual dataset sees the sampled intervention, as in pyvene.
 * - Datasets are plain settings unless `returnTensors: true` (pyvene defaults to tensors).
 * - `findLivePaths` returns a flat list of paths, shortest first, without pyvene's trailing
 *   empty level; `getPathMaxlenFilter` counts 0 when no path is live (pyvene raises).
 * - `formatStructure` / `formatSetting` return text in place of pyvene's matplotlib drawings
 *   `print_structure` / `print_setting`. pyvene's `start_variables` (computed wrongly, unused),
 *   `marginalize` (a no-op) and `add_variable` (leaves inputs and outputs stale) are left out.
 */
import {
  concat,
  defaultGenerator,
  type Generator,
  IntTensor,
  stack,
  tensor,
  zeros,
  type Tensor,
} from "../tensor/index.js";
import { analyseStructure } from "./graph.js";
import { formatValue, sameValue, valueToNumbers, type CausalValue, type Setting } from "./values.js";

/**
 * A variable's function: receives its parents' values in the order of `parents[variable]`;
 * an input's function takes no arguments and gives the input's default value.
 */
// biome-ignore lint/suspicious/noExplicitAny: typed functions such as `(w: number[], x: number[]) => boolean` must fit
export type Mechanism = (...parentValues: any[]) => CausalValue;

/** The parent settings of one variable that give one of its values. */
export interface EquivalenceClass {
  readonly value: CausalValue;
  readonly parentSettings: readonly Setting[];
}

/** Per non-input variable, one class per value it can take. */
export type EquivalenceClasses = Record<string, readonly EquivalenceClass[]>;

export interface CausalModelDefinition {
  readonly variables: readonly string[];
  readonly values: Readonly<Record<string, readonly CausalValue[]>>;
  readonly parents: Readonly<Record<string, readonly string[]>>;
  readonly functions: Readonly<Record<string, Mechanism>>;
  /** Defaults to each variable's longest-path depth from the inputs, outputs on the last step. */
  readonly timesteps?: Readonly<Record<string, number>>;
  readonly equivalenceClasses?: EquivalenceClasses;
  /** Layout for drawings, [x, y]; defaults to [rank within its timestep, timestep]. */
  readonly positions?: Readonly<Record<string, readonly [number, number]>>;
}

/** What a sampler is asked for: an input setting, optionally one under which `outputVariable` takes `outputValue`. */
export interface SampleRequest {
  readonly generator?: Generator;
  readonly outputVariable?: string;
  readonly outputValue?: CausalValue;
}

export interface SampleInputOptions extends SampleRequest {
  /** A condition on the total setting the input produces. */
  readonly mandatory?: (total: Setting) => boolean;
}

export type InputSampler = (request: SampleRequest & { readonly generator: Generator }) => Setting;
export type InterventionSampler = (request: { readonly generator: Generator }) => Setting;

export interface TensorConversion {
  readonly returnTensors: true;
  /** Defaults to `inputToTensor`. */
  readonly inputFunction?: (input: Setting) => Tensor;
  /** Defaults to `outputToTensor`. */
  readonly outputFunction?: (total: Setting) => Tensor;
}

export interface FactualDatasetOptions {
  readonly generator?: Generator;
  /** Defaults to `sampleInput`. */
  readonly sampler?: InputSampler;
  /** Keeps an example when true of its total setting. */
  readonly filter?: (total: Setting) => boolean;
  readonly returnTensors?: boolean;
}

export interface CounterfactualDatasetOptions {
  /** The id of a sampled intervention, e.g. which representation to intervene on. */
  readonly interventionId: (intervention: Setting) => number;
  /** Consecutive examples sharing one sampled intervention; default 1. */
  readonly batchSize?: number;
  readonly generator?: Generator;
  /** Samples bases, and sources asked for `{ outputVariable, outputValue }`; defaults to `sampleInput`. */
  readonly sampler?: InputSampler;
  /** Defaults to `sampleIntervention`. */
  readonly interventionSampler?: InterventionSampler;
  /** Keeps a sampled intervention when true of it. */
  readonly filter?: (intervention: Setting) => boolean;
  readonly returnTensors?: boolean;
}

export interface FactualExample {
  readonly inputIds: Setting;
  /** The total setting. */
  readonly labels: Setting;
}

export interface TensorFactualExample {
  readonly inputIds: Tensor;
  readonly labels: Tensor;
}

export interface CounterfactualExample {
  /** The base input. */
  readonly inputIds: Setting;
  /** One source input per intervened variable, in run order. */
  readonly sourceInputIds: readonly Setting[];
  /** The total setting of the base with the intervened variables taken from their sources. */
  readonly labels: Setting;
  /** The total setting of the base alone. */
  readonly baseLabels: Setting;
  readonly interventionId: number;
  readonly intervention: Setting;
}

export interface TensorCounterfactualExample {
  readonly inputIds: Tensor;
  /** [max(sources, intermediate variables), ...input shape], zero rows after the real sources. */
  readonly sourceInputIds: Tensor;
  readonly labels: Tensor;
  readonly baseLabels: Tensor;
  /** Shape [1]. */
  readonly interventionId: IntTensor;
  readonly intervention: Setting;
}

const MAX_REJECTIONS = 10_000;

export class CausalModel {
  /** In run order: by timestep, alphabetical within one. */
  readonly variables: readonly string[];
  readonly values: Readonly<Record<string, readonly CausalValue[]>>;
  readonly parents: Readonly<Record<string, readonly string[]>>;
  readonly children: Readonly<Record<string, readonly string[]>>;
  readonly functions: Readonly<Record<string, Mechanism>>;
  /** Variables without parents, alphabetical. */
  readonly inputs: readonly string[];
  /** Variables that are nobody's parent, alphabetical. */
  readonly outputs: readonly string[];
  readonly timesteps: Readonly<Record<string, number>>;
  readonly positions: Readonly<Record<string, readonly [number, number]>>;
  /** Filled in for every non-input variable by `generateEquivalenceClasses`. */
  readonly equivalenceClasses: EquivalenceClasses;

  constructor(definition: CausalModelDefinition) {
    const structure = analyseStructure(definition);
    this.variables = structure.variables;
    this.inputs = structure.inputs;
    this.outputs = structure.outputs;
    this.children = structure.children;
    this.timesteps = structure.timesteps;
    this.values = { ...definition.values };
    this.parents = { ...definition.parents };
    this.functions = { ...definition.functions };
    this.equivalenceClasses = { ...definition.equivalenceClasses };
    this.positions = defaultPositions(this.variables, this.timesteps, definition.positions ?? {});
  }

  /** Variables that are neither inputs nor outputs, in run order. */
  get intermediates(): readonly string[] {
    return this.variables.filter((v) => !this.inputs.includes(v) && !this.outputs.includes(v));
  }

  /**
   * The total setting: intervened variables (inputs included) take their given values, other
   * inputs their default, and every other variable its function of its parents.
   */
  runForward(intervention: Readonly<Setting> = {}): Setting {
    this.checkVariables(intervention, "intervention");
    const total: Setting = {};
    for (const v of this.variables) {
      total[v] = Object.hasOwn(intervention, v)
        ? intervention[v]
        : this.apply(
            v,
            this.parents[v].map((p) => total[p]),
          );
    }
    return total;
  }

  /**
   * Runs `base` with each variable in `sources` set to the value it takes when the model runs
   * on that variable's source input.
   */
  runInterchange(base: Readonly<Setting>, sources: Readonly<Record<string, Readonly<Setting>>>): Setting {
    this.checkVariables(sources, "sources");
    const intervention: Setting = { ...base };
    for (const [v, source] of Object.entries(sources)) intervention[v] = this.runForward(source)[v];
    return this.runForward(intervention);
  }

  /**
   * Fills `equivalenceClasses` for every non-input variable that has none: for each of its
   * values, the parent settings (all combinations of the parents' values, last parent fastest)
   * under which its function gives that value.
   */
  generateEquivalenceClasses(): void {
    for (const v of this.variables) {
      if (this.inputs.includes(v) || Object.hasOwn(this.equivalenceClasses, v)) continue;
      const classes = this.values[v].map((value) => ({ value, parentSettings: [] as Setting[] }));
      for (const parentValues of product(this.parents[v].map((p) => this.values[p]))) {
        const value = this.apply(v, parentValues);
        const match = classes.find((c) => sameValue(c.value, value));
        if (match === undefined)
          throw new RangeError(
            `CausalModel: functions["${v}"] gives ${formatValue(value)}, which is not among values["${v}"]`,
          );
        match.parentSettings.push(Object.fromEntries(this.parents[v].map((p, i) => [p, parentValues[i]])));
      }
      this.equivalenceClasses[v] = classes;
    }
  }

  /**
   * Each input drawn uniformly from its values; with `outputVariable`/`outputValue` or
   * `mandatory`, redrawn until the total setting meets them.
   */
  sampleInput(options: SampleInputOptions = {}): Setting {
    const generator = options.generator ?? defaultGenerator;
    const wanted = this.requestedValue(options, "sampleInput");
    const meets = (total: Setting) =>
      (wanted === undefined || sameValue(total[wanted.variable], wanted.value)) && (options.mandatory?.(total) ?? true);
    return rejectionSample(
      () => Object.fromEntries(this.inputs.map((v) => [v, choice(generator, this.values[v])])),
      (input) => meets(this.runForward(input)),
      "sampleInput: no sampled input met the requested value or the mandatory condition",
    );
  }

  /**
   * An input under which `outputVariable` (default: the only output) takes `outputValue`
   * (default: uniform over its values), built top-down by drawing a parent setting from that
   * value's equivalence class, so the values of `outputVariable` come out balanced.
   */
  sampleInputTreeBalanced(request: SampleRequest = {}): Setting {
    const generator = request.generator ?? defaultGenerator;
    if (request.outputVariable === undefined && this.outputs.length !== 1) {
      throw new TypeError(
        `CausalModel.sampleInputTreeBalanced: the model has ${this.outputs.length} outputs ` +
          `(${this.outputs.join(", ")}); pass outputVariable`,
      );
    }
    const variable = request.outputVariable ?? this.outputs[0];
    this.checkVariables({ [variable]: null }, "outputVariable");
    const value = request.outputValue !== undefined ? request.outputValue : choice(generator, this.values[variable]);
    this.generateEquivalenceClasses();
    const draw = (): Setting => {
      const input: Setting = {};
      this.assignTopDown(variable, value, input, generator);
      for (const v of this.inputs) if (!Object.hasOwn(input, v)) input[v] = choice(generator, this.values[v]);
      return input;
    };
    return rejectionSample(
      draw,
      (input) => sameValue(this.runForward(input)[variable], value),
      `sampleInputTreeBalanced: no sampled input gave ${variable} = ${formatValue(value)}`,
    );
  }

  /** Each intermediate variable, with probability ½, set to a uniform draw of its values; never empty. */
  sampleIntervention(options: { readonly generator?: Generator } = {}): Setting {
    const generator = options.generator ?? defaultGenerator;
    const candidates = this.intermediates;
    if (candidates.length === 0)
      throw new RangeError(
        "CausalModel.sampleIntervention: the model has no intermediate variables to intervene on; " +
          "pass your own interventionSampler",
      );
    const draw = (): Setting => {
      const intervention: Setting = {};
      for (const v of candidates) if (generator.uniform() < 0.5) intervention[v] = choice(generator, this.values[v]);
      return intervention;
    };
    return rejectionSample(
      draw,
      (intervention) => Object.keys(intervention).length > 0,
      "sampleIntervention: every draw was empty",
    );
  }

  /**
   * Live causal paths under `intervention`: [a, b, …] where each step's variable, set to some
   * other value on top of the intervention, changes the next one's value. Shortest first.
   */
  findLivePaths(intervention: Readonly<Setting> = {}): string[][] {
    const actual = this.runForward(intervention);
    const changes = (v: string, child: string) =>
      this.values[v].some(
        (value) => !sameValue(this.runForward({ ...intervention, [v]: value })[child], actual[child]),
      );
    const paths: string[][] = [];
    let level = this.variables.map((v) => [v]);
    while (level.length > 0) {
      level = level.flatMap((path) => {
        const last = path[path.length - 1];
        return this.children[last].filter((child) => changes(last, child)).map((child) => [...path, child]);
      });
      paths.push(...level);
    }
    return paths;
  }

  /**
   * True of a total setting whose longest live path (from its inputs) has a length in `lengths`
   * (0 when none is live).
   */
  getPathMaxlenFilter(lengths: readonly number[]): (total: Setting) => boolean {
    return (total) => lengths.includes(Math.max(0, ...this.findLivePaths(this.inputsOf(total)).map((p) => p.length)));
  }

  /** True of a total setting that agrees with `partial` on every variable `partial` names. */
  getPartialFilter(partial: Readonly<Setting>): (total: Setting) => boolean {
    this.checkVariables(partial, "partial setting");
    return (total) => Object.entries(partial).every(([v, value]) => sameValue(total[v], value));
  }

  /** True of a total setting with a live path (from its inputs) from `start` to `end`. */
  getSpecificPathFilter(start: string, end: string): (total: Setting) => boolean {
    this.checkVariables({ [start]: null, [end]: null }, "path ends");
    return (total) => this.findLivePaths(this.inputsOf(total)).some((p) => p[0] === start && p[p.length - 1] === end);
  }

  /** The inputs' values concatenated, inputs in alphabetical order; booleans are 0/1. */
  inputToTensor(setting: Readonly<Setting>): Tensor {
    return this.settingToTensor(setting, this.inputs, "inputToTensor");
  }

  /** The outputs' values concatenated, outputs in alphabetical order; booleans are 0/1. */
  outputToTensor(setting: Readonly<Setting>): Tensor {
    return this.settingToTensor(setting, this.outputs, "outputToTensor");
  }

  /** `size` examples: a sampled input (kept when `filter` holds of its total setting) and its total setting. */
  generateFactualDataset(
    size: number,
    options?: FactualDatasetOptions & { readonly returnTensors?: false },
  ): FactualExample[];
  generateFactualDataset(size: number, options: FactualDatasetOptions & TensorConversion): TensorFactualExample[];
  generateFactualDataset(
    size: number,
    options: FactualDatasetOptions & Partial<Omit<TensorConversion, "returnTensors">> = {},
  ): FactualExample[] | TensorFactualExample[] {
    checkCount(size, "size", 0);
    const generator = options.generator ?? defaultGenerator;
    const sampler = options.sampler ?? ((request) => this.sampleInput(request));
    const examples: FactualExample[] = [];
    while (examples.length < size) {
      examples.push(
        rejectionSample(
          () => {
            const inputIds = sampler({ generator });
            return { inputIds, labels: this.runForward(inputIds) };
          },
          (example) => options.filter?.(example.labels) ?? true,
          "generateFactualDataset: the filter rejected every sampled input",
        ),
      );
    }
    if (options.returnTensors !== true) return examples;
    const { inputFunction, outputFunction } = this.conversions(options);
    return examples.map((e) => ({ inputIds: inputFunction(e.inputIds), labels: outputFunction(e.labels) }));
  }

  /**
   * `size` interchange examples in batches of `batchSize` sharing one sampled intervention
   * (kept when `filter` holds of it). Per example: a sampled base, and for each intervened
   * variable in run order a source sampled to give that variable its intervention value;
   * `labels` is the base run with those variables taken from their sources.
   */
  generateCounterfactualDataset(
    size: number,
    options: CounterfactualDatasetOptions & { readonly returnTensors?: false },
  ): CounterfactualExample[];
  generateCounterfactualDataset(
    size: number,
    options: CounterfactualDatasetOptions & TensorConversion,
  ): TensorCounterfactualExample[];
  generateCounterfactualDataset(
    size: number,
    options: CounterfactualDatasetOptions & Partial<Omit<TensorConversion, "returnTensors">>,
  ): CounterfactualExample[] | TensorCounterfactualExample[] {
    checkCount(size, "size", 0);
    const batchSize = options.batchSize ?? 1;
    checkCount(batchSize, "batchSize", 1);
    const generator = options.generator ?? defaultGenerator;
    const sampler = options.sampler ?? ((request) => this.sampleInput(request));
    const interventionSampler = options.interventionSampler ?? ((request) => this.sampleIntervention(request));
    const examples: CounterfactualExample[] = [];
    while (examples.length < size) {
      const intervention = rejectionSample(
        () => interventionSampler({ generator }),
        (candidate) => options.filter?.(candidate) ?? true,
        "generateCounterfactualDataset: the filter rejected every sampled intervention",
      );
      this.checkVariables(intervention, "sampled intervention");
      const intervened = this.variables.filter((v) => Object.hasOwn(intervention, v));
      if (intervened.length === 0)
        throw new RangeError(
          "CausalModel.generateCounterfactualDataset: the intervention sampler returned an empty intervention",
        );
      const interventionId = options.interventionId(intervention);
      for (let i = 0; i < batchSize && examples.length < size; i++) {
        const base = sampler({ generator });
        const sources = Object.fromEntries(
          intervened.map((v) => [v, sampler({ generator, outputVariable: v, outputValue: intervention[v] })]),
        );
        examples.push({
          inputIds: base,
          sourceInputIds: intervened.map((v) => sources[v]),
          labels: this.runInterchange(base, sources),
          baseLabels: this.runForward(base),
          interventionId,
          intervention,
        });
      }
    }
    if (options.returnTensors !== true) return examples;
    const { inputFunction, outputFunction } = this.conversions(options);
    const rows = Math.max(this.intermediates.length, ...examples.map((e) => e.sourceInputIds.length));
    return examples.map((e) => {
      const inputIds = inputFunction(e.inputIds);
      const padding = Array.from({ length: rows - e.sourceInputIds.length }, () => zeros(inputIds.shape));
      return {
        inputIds,
        sourceInputIds: stack([...e.sourceInputIds.map(inputFunction), ...padding]),
        labels: outputFunction(e.labels),
        baseLabels: outputFunction(e.baseLabels),
        interventionId: new IntTensor([e.interventionId]),
        intervention: e.intervention,
      };
    });
  }

  /** One line per variable in run order: timestep, name and parents. */
  formatStructure(): string {
    return this.variables.map((v) => this.describe(v, "")).join("\n");
  }

  /** `formatStructure` with each variable's value in `setting`. */
  formatSetting(setting: Readonly<Setting>): string {
    return this.variables
      .map((v) => this.describe(v, Object.hasOwn(setting, v) ? ` = ${formatValue(setting[v])}` : ""))
      .join("\n");
  }

  private describe(v: string, value: string): string {
    const parents = this.parents[v].length > 0 ? ` ← ${this.parents[v].join(", ")}` : "";
    return `t=${this.timesteps[v]}  ${v}${value}${parents}`;
  }

  private apply(v: string, args: readonly CausalValue[]): CausalValue {
    let value: CausalValue | undefined;
    try {
      value = this.functions[v](...args);
    } catch (cause) {
      throw new Error(
        `CausalModel: functions["${v}"] threw on (${args.map(formatValue).join(", ")}): ${String(cause)}`,
        { cause },
      );
    }
    if (value === undefined)
      throw new TypeError(`CausalModel: functions["${v}"] returned undefined; it must return a value of "${v}"`);
    return value;
  }

  private assignTopDown(variable: string, value: CausalValue, input: Setting, generator: Generator): void {
    if (this.inputs.includes(variable)) {
      input[variable] = value;
      return;
    }
    const settings = this.equivalenceClasses[variable].find((c) => sameValue(c.value, value))?.parentSettings ?? [];
    if (settings.length === 0)
      throw new RangeError(
        `CausalModel.sampleInputTreeBalanced: no parent setting gives ${variable} = ${formatValue(value)}`,
      );
    for (const [parent, parentValue] of Object.entries(choice(generator, settings)))
      this.assignTopDown(parent, parentValue, input, generator);
  }

  private requestedValue(request: SampleRequest, method: string): { variable: string; value: CausalValue } | undefined {
    if (request.outputVariable === undefined && request.outputValue === undefined) return undefined;
    if (request.outputVariable === undefined || request.outputValue === undefined)
      throw new TypeError(`CausalModel.${method}: outputVariable and outputValue go together`);
    this.checkVariables({ [request.outputVariable]: null }, "outputVariable");
    return { variable: request.outputVariable, value: request.outputValue };
  }

  private inputsOf(total: Readonly<Setting>): Setting {
    return Object.fromEntries(this.inputs.map((v) => [v, total[v]]));
  }

  private settingToTensor(setting: Readonly<Setting>, variables: readonly string[], method: string): Tensor {
    return concat(
      variables.map((v) => {
        if (!Object.hasOwn(setting, v))
          throw new TypeError(`CausalModel.${method}: the setting has no value for "${v}"`);
        return tensor(valueToNumbers(setting[v], v));
      }),
    );
  }

  private conversions(
    options: Partial<Omit<TensorConversion, "returnTensors">>,
  ): Required<Omit<TensorConversion, "returnTensors">> {
    return {
      inputFunction: options.inputFunction ?? ((s) => this.inputToTensor(s)),
      outputFunction: options.outputFunction ?? ((s) => this.outputToTensor(s)),
    };
  }

  private checkVariables(setting: object, what: string): void {
    for (const v of Object.keys(setting)) {
      if (!Object.hasOwn(this.timesteps, v))
        throw new TypeError(
          `CausalModel: ${what} names unknown variable "${v}" (variables: ${this.variables.join(", ")})`,
        );
    }
  }
}

function defaultPositions(
  variables: readonly string[],
  timesteps: Readonly<Record<string, number>>,
  given: Readonly<Record<string, readonly [number, number]>>,
): Record<string, readonly [number, number]> {
  for (const v of Object.keys(given)) {
    if (!Object.hasOwn(timesteps, v))
      throw new TypeError(`CausalModel: positions has an entry for "${v}", which is not in variables`);
  }
  const positions: Record<string, readonly [number, number]> = {};
  const width = new Map<number, number>();
  for (const v of variables) {
    if (Object.hasOwn(given, v)) {
      positions[v] = given[v];
      continue;
    }
    const rank = width.get(timesteps[v]) ?? 0;
    positions[v] = [rank, timesteps[v]];
    width.set(timesteps[v], rank + 1);
  }
  return positions;
}

function choice<T>(generator: Generator, items: readonly T[]): T {
  return items[Math.floor(generator.uniform() * items.length)];
}

/** Every combination of one value per list, the last list varying fastest (itertools.product). */
function product(lists: readonly (readonly CausalValue[])[]): CausalValue[][] {
  return lists.reduce<CausalValue[][]>(
    (combos, list) => combos.flatMap((combo) => list.map((value) => [...combo, value])),
    [[]],
  );
}

function rejectionSample<T>(draw: () => T, accept: (candidate: T) => boolean, failure: string): T {
  for (let i = 0; i < MAX_REJECTIONS; i++) {
    const candidate = draw();
    if (accept(candidate)) return candidate;
  }
  throw new RangeError(`CausalModel.${failure} (${MAX_REJECTIONS} tries)`);
}

function checkCount(n: number, name: string, min: number): void {
  if (!Number.isInteger(n) || n < min)
    throw new RangeError(`CausalModel: ${name} must be an integer ≥ ${min}, got ${n}`);
}

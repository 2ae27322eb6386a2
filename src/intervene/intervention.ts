/**
 * The intervention base class. An intervention maps the units gathered at a site of the base run
 * (and, for source-based ones, the same units gathered from a source run) to new values that are
 * written back out of place. Parameters are registered as on any Module, so trainable
 * interventions expose them to optimisers and to save/load under pyvene's state-dict names.
 */
import { Module } from "../nn/module.js";
import { exactKeys } from "../options/index.js";
import { Tensor, type Generator } from "../tensor/index.js";
import { formatShape } from "../tensor/shape.js";
import type { SwapOptions } from "./swap.js";

/**
 * Parameters that never take a gradient: pyvene's buffers (the rotation base B, Noise's noise)
 * and its `requires_grad=False` Parameters (intervention_population, the PCA tensors). They are
 * registered as parameters so that they appear under pyvene's state-dict names, but
 * `requireGrad` on an intervention or rotation layer leaves them alone and `countParameters`
 * does not count them.
 */
const frozenTensors = new WeakSet<Tensor>();

/** Marks a registered tensor as frozen (see above) and returns it. */
export function markFrozen(t: Tensor): Tensor {
  frozenTensors.add(t);
  t.requiresGrad = false;
  return t;
}

export function isFrozen(t: Tensor): boolean {
  return frozenTensors.has(t);
}

/**
 * Per-example subspace selections: subspaces[i] lists the ids for example i (partition block ids
 * when the intervention has a subspace partition, raw feature indices otherwise). Custom
 * interventions may receive any JSON value here (pyvene passes it through untouched).
 */
export type Subspaces = readonly (readonly number[])[];

export interface InterventionInput {
  /** The gathered source units, or null for source-less interventions. */
  source: Tensor | null;
  subspaces: Subspaces | unknown | null;
  /**
   * The calling model's useFast: every example takes example 0's subspaces. An IntervenableModel
   * always passes its own (pyvene sets its use_fast on every intervention it wraps); otherwise
   * the intervention's own applies.
   */
  useFast?: boolean;
  /**
   * pyvene's **kwargs: the call's interventionAdditionalKwargs and, under asAdaptor, `args`, the
   * site module's input at the same units. An IntervenableModel gives them, as pyvene does, only to
   * Collect and source-constant interventions.
   */
  kwargs?: Readonly<Record<string, unknown>>;
}

/**
 * pyvene's InterventionOutput: what `apply` may return instead of a tensor, to hand back a latent
 * (e.g. an autoencoder's code) beside the new value. An IntervenableModel writes `output` and lists
 * the object in the call's fullInterventionOutputs.
 */
export class InterventionOutput<Latent = unknown> {
  readonly output: Tensor;
  readonly latent: Latent | null;

  constructor({ output, latent = null }: { output: Tensor; latent?: Latent | null }) {
    if (!(output instanceof Tensor))
      throw new TypeError(`InterventionOutput: output must be the new value as a Tensor, got ${typeof output}`);
    this.output = output;
    this.latent = latent;
  }
}

/** Options every built-in intervention accepts (pyvene's constructor kwargs, camelCased). */
export interface InterventionOptions {
  /** Width of the gathered units (component width × max_number_of_units); null when unknown. */
  embedDim?: number | null;
  /** Entries [start, end) or explicit index lists (pyvene's rule: a 2-element list starting with an int is a range). */
  subspacePartition?: readonly (readonly number[])[] | null;
  /** A constant source vector, making the intervention source-constant. */
  sourceRepresentation?: Tensor | null;
  /** Opt out of flattening multi-unit inputs (pyvene's keep_last_dim). */
  keepLastDim?: boolean;
  /** Width of the low-rank subspace (LowRankRotatedSpace, JumpReLUAutoencoder). */
  lowRankDimension?: number | null;
  /** Width of the latent (Autoencoder). */
  latentDim?: number | null;
  /** Random numbers for initial weights (rotations, autoencoder, default noise); the global generator when omitted. */
  generator?: Generator;
  /** Every example takes example 0's subspaces (pyvene's use_fast); an IntervenableModel passes its own per call. */
  useFast?: boolean;
}

const INTERVENTION_OPTIONS = [
  "embedDim",
  "subspacePartition",
  "sourceRepresentation",
  "keepLastDim",
  "lowRankDimension",
  "latentDim",
  "generator",
  "useFast",
] as const satisfies readonly (keyof InterventionOptions)[];

export abstract class Intervention extends Module<Tensor, InterventionInput> {
  /** pyvene's class name, used in configs and saved files. */
  abstract readonly typeName: string;
  readonly embedDim: number | null;
  /** The first interchangeDim features are swapped when no subspaces are given (all when null). */
  interchangeDim: number | readonly number[] | null;
  readonly subspacePartition: readonly (readonly number[])[] | null;
  readonly keepLastDim: boolean;
  readonly useFast: boolean;
  sourceRepresentation: Tensor | null;

  /** `extraOptions`: the names a subclass reads beyond InterventionOptions (unknown ones are errors). */
  constructor(options: InterventionOptions = {}, extraOptions: readonly string[] = []) {
    super();
    exactKeys(options, [...INTERVENTION_OPTIONS, ...extraOptions], `${new.target.name} options`);
    this.embedDim = options.embedDim ?? null;
    this.interchangeDim = this.embedDim;
    this.subspacePartition = expandPartition(options.subspacePartition ?? null);
    this.keepLastDim = options.keepLastDim ?? false;
    this.useFast = options.useFast ?? false;
    this.sourceRepresentation = options.sourceRepresentation ?? null;
  }

  // Capabilities: what orchestration reads instead of class names (pyvene's marker classes).

  /** Whether it has trainable parameters (pyvene's TrainableIntervention). */
  get trainable(): boolean {
    return false;
  }

  /** Whether it needs no source run: source-less kinds, or a constant source representation. */
  get sourceConstant(): boolean {
    return this.sourceRepresentation !== null;
  }

  /**
   * Whether multi-unit inputs are flattened before the call, (b, k, d) → (b, k·d) and
   * (b, kh, kp, dh) → (b, kp, kh·dh), as pyvene's do_intervention does for distributed kinds.
   * Localist kinds (the default) act on each unit's features alike.
   */
  get distributed(): boolean {
    return false;
  }

  /** Whether its result is recorded (and nothing written), as Collect's. */
  get collects(): boolean {
    return false;
  }

  /** Whether its source is the site module's input rather than its output (Skip: "skip this layer"). */
  get readsModuleInput(): boolean {
    return false;
  }

  /** Whether annealing reaches it: it has a temperature that setTemperature sets (pyvene's set_temperature). */
  get annealable(): boolean {
    return false;
  }

  /** Whether a saved config rebuilds it (not one fitted from data, nor a function). */
  get configurable(): boolean {
    return true;
  }

  /**
   * The new value of the units, or null to write nothing (a function that only records). A
   * subclass may override it to return an InterventionOutput (the value and a latent).
   */
  apply(base: Tensor, input: InterventionInput): Tensor | InterventionOutput | null {
    return this.call(base, input);
  }

  /** Sets the temperature of an annealable intervention. */
  setTemperature(t: number | Tensor): void {
    throw new TypeError(`${this.typeName} has no temperature to set (t = ${String(t)})`);
  }

  setInterchangeDim(dim: number | readonly number[]): void {
    this.interchangeDim = dim;
  }

  setSourceRepresentation(source: Tensor): void {
    this.sourceRepresentation = source;
  }

  /**
   * The selection options for doInterventionBySwap: this intervention's interchangeDim and partition,
   * `subspaces`, and the call's useFast (else this intervention's).
   */
  protected swapOptions(subspaces: unknown, useFast = this.useFast): SwapOptions {
    return { interchangeDim: this.interchangeDim, subspaces, subspacePartition: this.subspacePartition, useFast };
  }

  /** Parameters an optimiser may train (frozen ones excluded), by dotted path. */
  trainableParameters(): [string, Tensor][] {
    return this.namedParameters().filter(([, p]) => !isFrozen(p));
  }

  /** pyvene's count_parameters: the number of values in parameters that currently require a gradient. */
  countParameters(): number {
    return this.namedParameters().reduce((n, [, p]) => n + (p.requiresGrad ? p.size : 0), 0);
  }

  /** Marks the trainable parameters as needing (or not) a gradient; frozen ones stay frozen. */
  override requireGrad(flag = true): this {
    for (const [, p] of this.trainableParameters()) p.requireGrad(flag);
    return this;
  }

  /** A readable form, pyvene's `__str__`. */
  override toString(): string {
    return `${this.typeName}()`;
  }
}

/** The source to use: the constant source representation when set, else the gathered source. */
export function resolveSource(intervention: Intervention, source: Tensor | null): Tensor {
  const s = intervention.sourceRepresentation ?? source;
  if (s === null) {
    throw new TypeError(`${intervention.typeName}: no source was given and no sourceRepresentation is set`);
  }
  return s;
}

/** The gathered source, required (trainable interventions ignore sourceRepresentation, as in pyvene). */
export function requireSource(intervention: Intervention, source: Tensor | null): Tensor {
  if (source === null) throw new TypeError(`${intervention.typeName}: a source is required (got none)`);
  return source;
}

/** The embedding width, required by interventions that own weights of that size. */
export function requireEmbedDim(typeName: string, embedDim: number | null | undefined): number {
  if (embedDim === null || embedDim === undefined || !Number.isInteger(embedDim) || embedDim < 1) {
    throw new TypeError(
      `${typeName} needs embedDim (a positive integer: the width of the gathered units), got ${String(embedDim)}`,
    );
  }
  return embedDim;
}

/**
 * An intervention with parameters to train (pyvene's TrainableIntervention). Like pyvene's, it is
 * never source-constant, even when given a source representation.
 */
export abstract class TrainableIntervention extends Intervention {
  override get trainable(): boolean {
    return true;
  }

  override get sourceConstant(): boolean {
    return false;
  }
}

/**
 * A trainable intervention of a distributed kind (pyvene's DistributedRepresentationIntervention):
 * k units are one vector of k·d features, unless keepLastDim asks otherwise.
 */
export abstract class DistributedTrainableIntervention extends TrainableIntervention {
  override get distributed(): boolean {
    return !this.keepLastDim;
  }
}

/** pyvene's partition expansion: [a, b] with integer a is range(a, b); other lists are kept. */
export function expandPartition(partition: readonly (readonly number[])[] | null): number[][] | null {
  if (partition === null) return null;
  return partition.map((entry, i) => {
    if (!Array.isArray(entry) || entry.some((v) => !Number.isInteger(v))) {
      throw new TypeError(
        `subspace_partition[${i}] must be [start, end) or a list of feature indices, got ${JSON.stringify(entry)}`,
      );
    }
    if (entry.length === 2) {
      const [a, b] = entry;
      if (b < a)
        throw new RangeError(`subspace_partition[${i}] = [${a}, ${b}] is an empty range (expected start ≤ end)`);
      return Array.from({ length: b - a }, (_, k) => a + k);
    }
    return [...entry];
  });
}

/** Checks that the gathered units have the width an intervention's weights expect. */
export function checkWidth(typeName: string, base: Tensor, width: number, what = "embedDim"): void {
  if (base.rank === 0 || base.shape[base.rank - 1] !== width) {
    throw new RangeError(
      `${typeName}: the gathered units have shape ${formatShape(base.shape)}, ` +
        `but the last axis must have width ${what} = ${width}` +
        " (a distributed intervention over k units needs embed_dim = k × the component width)",
    );
  }
}

/** Writes a number (or a one-value tensor) into a one-value parameter in place, keeping the tensor object. */
export function setScalarParameter(target: Tensor, value: number | Tensor, what: string): void {
  const v = typeof value === "number" ? value : value instanceof Tensor && value.size === 1 ? value.data[0] : NaN;
  if (!Number.isFinite(v)) {
    const got =
      typeof value === "number"
        ? String(value)
        : value instanceof Tensor
          ? `a tensor of ${value.size} values`
          : typeof value;
    throw new TypeError(`${what}: expected a finite number or a one-value tensor, got ${got}`);
  }
  target.data.fill(v);
}

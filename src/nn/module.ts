/**
 * Module: a node of the model tree. Children and parameters are registered under names so that
 * dotted paths are exactly the Hugging Face parameter names (`transformer.h.3.attn.c_attn.weight`).
 * Every module maps one main tensor to one tensor (`call`), with per-call state such as masks and
 * caches passed alongside in a context object. That keeps hooks uniform: a pre-hook sees and may
 * replace the input, a post-hook sees the input and output and may replace the output, which is
 * exactly what an intervention site needs.
 */
import { type HalfDtype, type HalfStorage, type IntTensor, roundToHalf, Tensor } from "../tensor/index.js";
import { formatShape, sameShape } from "../tensor/shape.js";

export type PreHook<I = Tensor, C = unknown> = (module: Module<I, C>, input: I, context: C) => I | void;
export type PostHook<I = Tensor, C = unknown> = (
  module: Module<I, C>,
  input: I,
  output: Tensor,
  context: C,
) => Tensor | void;

export interface HookHandle {
  remove(): void;
}

export type StateDict = ReadonlyMap<string, Tensor | IntTensor> | Readonly<Record<string, Tensor | IntTensor>>;

/** I is the main input (a Tensor, or token ids for embeddings); C the per-call context. */
export abstract class Module<I = Tensor, C = unknown> {
  private readonly childModules = new Map<string, AnyModule>();
  private readonly ownParameters = new Map<string, Tensor>();
  private readonly preHooks: PreHook<I, C>[] = [];
  private readonly postHooks: PostHook<I, C>[] = [];

  /** The computation, without hooks. Call modules through `call`. */
  protected abstract forward(input: I, context: C): Tensor;

  /** Runs the module with its hooks: pre-hooks may replace the input, post-hooks the output. */
  call(input: I, context: C = undefined as C): Tensor {
    let x = input;
    for (const hook of [...this.preHooks]) x = hook(this, x, context) ?? x;
    let y = this.forward(x, context);
    for (const hook of [...this.postHooks]) y = hook(this, x, y, context) ?? y;
    return y;
  }

  addPreHook(hook: PreHook<I, C>): HookHandle {
    return addTo(this.preHooks, hook);
  }

  addPostHook(hook: PostHook<I, C>): HookHandle {
    return addTo(this.postHooks, hook);
  }

  /** Number of hooks currently attached to this module (not its children). */
  get hookCount(): number {
    return this.preHooks.length + this.postHooks.length;
  }

  protected module<M extends AnyModule>(name: string, child: M): M {
    checkName(name, this.childModules, this.ownParameters);
    this.childModules.set(name, child);
    return child;
  }

  protected parameter(name: string, value: Tensor): Tensor {
    checkName(name, this.childModules, this.ownParameters);
    this.ownParameters.set(name, value);
    return value;
  }

  /** Direct children in registration order. */
  children(): [string, AnyModule][] {
    return [...this.childModules];
  }

  /** This module ("") and all descendants, by dotted path. */
  *namedModules(prefix = ""): Generator<[string, AnyModule]> {
    yield [prefix, this];
    for (const [name, child] of this.childModules) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  /** Every parameter by dotted path; a tensor shared by two paths (tied weights) appears once, first path wins. */
  namedParameters(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules()) {
      for (const [name, p] of m.ownParameters) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([path ? `${path}.${name}` : name, p]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** The module at a dotted path, or an error naming the first missing segment. */
  getModule(path: string): AnyModule {
    if (path === "") return this;
    let current: AnyModule = this;
    for (const segment of path.split(".")) {
      const next = current.childModules.get(segment);
      if (!next) {
        throw new RangeError(
          `getModule: no module "${segment}" in "${path}" ` +
            `(children here: ${[...current.childModules.keys()].join(", ") || "none"})`,
        );
      }
      current = next;
    }
    return current;
  }

  /** Marks every parameter as needing (or not) a gradient. */
  requireGrad(flag = true): this {
    for (const p of this.parameters()) p.requireGrad(flag);
    return this;
  }

  /**
   * Copies weights into the parameters, strictly: every parameter must be present with its
   * shape, and every key must name a parameter (or a tied alias listed in `ignore`). All keys are
   * checked before anything is written, so a failed load leaves the module unchanged.
   */
  loadStateDict(state: StateDict, options: LoadStateDictOptions = {}): void {
    const entries = state instanceof Map ? [...state] : Object.entries(state);
    const given = new Map(entries);
    const ignored = new Set(options.ignore ?? []);
    const allPaths = new Map<string, Tensor>();
    for (const [path, m] of this.namedModules()) {
      for (const [name, p] of m.ownParameters) allPaths.set(path ? `${path}.${name}` : name, p);
    }
    const missing: string[] = [];
    const misshaped: string[] = [];
    const loaded = new Set<Tensor>();
    const plan: [Tensor, Tensor][] = [];
    for (const [path, p] of allPaths) {
      const value = given.get(path);
      if (value === undefined) {
        if (!loaded.has(p) && !ignored.has(path)) missing.push(path);
        continue;
      }
      if (!(value instanceof Tensor)) {
        misshaped.push(`${path} (an integer tensor; expected float32 of shape ${formatShape(p.shape)})`);
      } else if (!sameShape(value.shape, p.shape)) {
        misshaped.push(`${path} (${formatShape(value.shape)} given, ${formatShape(p.shape)} expected)`);
      } else if (options.share && value.half !== null && p.requiresGrad) {
        misshaped.push(`${path} (${value.dtype} weights are frozen; this parameter requires a gradient)`);
      } else {
        plan.push([p, value]);
        loaded.add(p);
      }
    }
    const stillMissing = missing.filter((path) => !loaded.has(allPaths.get(path)!));
    const unexpected = [...given.keys()].filter((k) => !allPaths.has(k) && !ignored.has(k));
    const problems = [
      stillMissing.length ? `missing: ${stillMissing.join(", ")}` : "",
      unexpected.length ? `unexpected: ${unexpected.join(", ")}` : "",
      misshaped.length ? `wrong shape: ${misshaped.join("; ")}` : "",
    ].filter(Boolean);
    if (problems.length > 0) throw new RangeError(`loadStateDict: ${problems.join(" | ")}`);
    for (const [p, value] of plan) {
      if (options.share) p.adoptStorage(value);
      else if (p.dtype === "float32") p.data.set(value.data);
      else p.adoptStorage(new Tensor(copyAsHalf(value, p.dtype), p.shape));
    }
  }
}

export interface LoadStateDictOptions {
  /** Keys that may be absent or present without naming a parameter (tied aliases). */
  ignore?: readonly string[];
  /**
   * The parameters take the given tensors' storage (and dtype) instead of copies: for loaders
   * whose tensors nobody else holds, so that a model's weights are never in memory twice.
   */
  share?: boolean;
}

/** A copy of `value` in a parameter's 16-bit dtype. */
function copyAsHalf(value: Tensor, dtype: HalfDtype): HalfStorage {
  const half = value.half;
  return half?.dtype === dtype ? { dtype, bits: half.bits.slice() } : roundToHalf(value.data, dtype);
}

/** A module of any input and context type: what a model tree holds. */
// biome-ignore lint/suspicious/noExplicitAny: a tree holds modules of every input and context type; callers narrow
export type AnyModule = Module<any, any>;

function addTo<T>(list: T[], item: T): HookHandle {
  list.push(item);
  let removed = false;
  return {
    remove() {
      if (removed) return;
      removed = true;
      const i = list.indexOf(item);
      if (i >= 0) list.splice(i, 1);
    },
  };
}

function checkName(name: string, children: Map<string, unknown>, params: Map<string, unknown>): void {
  if (name === "" || name.includes("."))
    throw new RangeError(`Module: invalid name "${name}" (non-empty, without dots)`);
  if (children.has(name) || params.has(name)) throw new RangeError(`Module: "${name}" is already registered`);
}

/**
 * A module that only groups children under a name (torch.nn.ModuleList, HF's `transformer` or
 * `model`): paths and hooks need the node, but the computation belongs to its owner.
 */
export abstract class Container extends Module {
  protected forward(): Tensor {
    throw new Error(`${this.constructor.name} is a container; call its children`);
  }
}

/** An ordered list of modules named "0", "1", … (torch.nn.ModuleList). */
export class ModuleList<M extends AnyModule> extends Container {
  readonly items: M[];

  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.module(String(i), m));
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items[i];
    if (!m) throw new RangeError(`ModuleList: index ${i} out of range (0..${this.items.length - 1})`);
    return m;
  }
}

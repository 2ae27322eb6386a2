/**
 * Optimisers with PyTorch's update rules: SGD (momentum, dampening, Nesterov, L2 weight decay),
 * Adam (bias correction, ε added after the bias-corrected square root, L2 weight decay added to
 * the gradient, as torch.optim.Adam) and AdamW (decoupled weight decay). Each update follows
 * torch 1.13's single-tensor CPU path op by op, rounding to float32 after each of its ops, so
 * results agree with PyTorch's to float32 rounding (fused multiply-adds aside).
 *
 * Parameters are updated in place (their storage), so the modules and interventions holding them
 * see the new values; a parameter without a gradient is skipped, as in PyTorch. Hyperparameters
 * live on parameter groups (`paramGroups[i].lr` etc.), which schedulers and users may change.
 */
import { describe, readOptions } from "../options/index.js";
import { Tensor } from "../tensor/index.js";

const f32 = Math.fround;

/** A group as given: its parameters plus any hyperparameters that override the optimiser's defaults. */
export type ParamGroupInput<H> = { params: Iterable<Tensor> } & Partial<H>;

/** A group as held: its parameters and every hyperparameter. */
export type ParamGroup<H> = H & { params: Tensor[] };

/** What a learning-rate scheduler needs of an optimiser. */
export interface HasParamGroups {
  readonly paramGroups: { lr: number }[];
}

export abstract class Optimizer<H extends { lr: number } = { lr: number }, S = unknown> implements HasParamGroups {
  readonly paramGroups: ParamGroup<H>[];
  /** Per-parameter state (moment estimates, momentum buffers), created at a parameter's first update. */
  readonly state = new Map<Tensor, S>();

  /**
   * `params` is a list of tensors (one group) or a list of groups, each `{ params, ...overrides }`.
   * A parameter may appear only once across all groups.
   */
  protected constructor(params: Iterable<Tensor> | readonly ParamGroupInput<H>[], baseDefaults: H, options: unknown) {
    const name = new.target.name;
    const hyperparameters = Object.keys(baseDefaults) as (keyof H & string)[];
    const defaults = { ...baseDefaults, ...readOptions<H>(options, hyperparameters, `${name} options`) };
    const list = [...(params as Iterable<Tensor | ParamGroupInput<H>>)];
    if (list.length === 0)
      throw new RangeError(`${name}: got an empty parameter list (expected tensors, or groups { params, ... })`);
    const groups: ParamGroupInput<H>[] = list.every((p) => p instanceof Tensor)
      ? [{ params: list as Tensor[] } as unknown as ParamGroupInput<H>]
      : (list as ParamGroupInput<H>[]);
    const known = ["params", ...hyperparameters];
    const seen = new Map<Tensor, string>();
    this.paramGroups = groups.map((group, g) => {
      const where = `${name}: paramGroups[${g}]`;
      if (group === null || typeof group !== "object" || group instanceof Tensor || !("params" in group)) {
        throw new TypeError(
          `${where} must be a group { params: Tensor[], ... } (or give a plain list of tensors), ` +
            `got ${describe(group)}`,
        );
      }
      const overrides = readOptions<ParamGroupInput<H>>(group, known as (keyof ParamGroupInput<H> & string)[], where);
      const tensors = [...group.params];
      tensors.forEach((p, i) => {
        const at = `${where}.params[${i}]`;
        if (!(p instanceof Tensor)) throw new TypeError(`${at} must be a Tensor, got ${describe(p)}`);
        if (!p.isLeaf)
          throw new TypeError(`${at} is computed from other tensors; only leaf tensors (parameters) can be optimised`);
        const earlier = seen.get(p);
        if (earlier !== undefined)
          throw new RangeError(`${at} is the same tensor as ${earlier} (each parameter may be given once)`);
        seen.set(p, at);
      });
      const merged = { ...defaults, ...overrides, params: tensors } as ParamGroup<H>;
      this.validate(merged, where);
      return merged;
    });
  }

  /** Checks a group's hyperparameters; errors name the group and the field. */
  protected abstract validate(group: ParamGroup<H>, where: string): void;

  /** Updates every parameter that has a gradient, from its gradient and state. */
  abstract step(): void;

  /** Drops the gradients of all parameters (PyTorch's zero_grad with set_to_none). */
  zeroGrad(): void {
    for (const group of this.paramGroups) for (const p of group.params) p.zeroGrad();
  }
}

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  /** L2 penalty: weightDecay·p is added to the gradient. */
  weightDecay: number;
  nesterov: boolean;
}

interface SGDState {
  momentumBuffer: Float32Array;
}

/**
 * torch.optim.SGD: d = g + λp; with momentum μ, b = g on the first step and b = μb + (1 − τ)d
 * after, then d = d + μb (Nesterov) or d = b; p = p − lr·d.
 */
export class SGD extends Optimizer<SGDOptions, SGDState> {
  constructor(params: Iterable<Tensor> | readonly ParamGroupInput<SGDOptions>[], options: Partial<SGDOptions> = {}) {
    super(params, { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false }, options);
  }

  protected validate(g: ParamGroup<SGDOptions>, where: string): void {
    nonNegative(g.lr, `${where}.lr`);
    nonNegative(g.momentum, `${where}.momentum`);
    if (!Number.isFinite(g.dampening))
      throw new RangeError(`${where}.dampening must be a finite number, got ${g.dampening}`);
    nonNegative(g.weightDecay, `${where}.weightDecay`);
    if (typeof g.nesterov !== "boolean")
      throw new TypeError(`${where}.nesterov must be true or false, got ${describe(g.nesterov)}`);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) {
      throw new RangeError(
        `${where}: nesterov needs momentum > 0 and dampening 0 (got momentum ${g.momentum}, dampening ${g.dampening})`,
      );
    }
  }

  step(): void {
    for (const group of this.paramGroups) {
      const wd = f32(group.weightDecay);
      const mu = f32(group.momentum);
      const keep = f32(1 - group.dampening);
      const alpha = f32(-group.lr);
      for (const p of group.params) {
        if (p.grad === null) continue;
        const w = p.data;
        const grad = p.grad.data;
        let state = this.state.get(p);
        const first = state === undefined;
        if (group.momentum !== 0 && state === undefined) {
          state = { momentumBuffer: new Float32Array(w.length) };
          this.state.set(p, state);
        }
        const buf = state?.momentumBuffer;
        for (let i = 0; i < w.length; i++) {
          let d = group.weightDecay !== 0 ? f32(grad[i] + wd * w[i]) : grad[i];
          if (buf) {
            buf[i] = first ? d : f32(f32(buf[i] * mu) + keep * d);
            d = group.nesterov ? f32(d + mu * buf[i]) : buf[i];
          }
          w[i] = f32(w[i] + alpha * d);
        }
      }
    }
  }
}

export interface AdamOptions {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  /** Adam: L2 penalty added to the gradient. AdamW: decoupled decay p ← p·(1 − lr·weightDecay). */
  weightDecay: number;
}

export interface AdamState {
  step: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

/**
 * torch.optim.Adam: g = g + λp; m = β₁m + (1 − β₁)g; v = β₂v + (1 − β₂)g²;
 * p = p − (lr / (1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + ε).
 */
export class Adam extends Optimizer<AdamOptions, AdamState> {
  constructor(params: Iterable<Tensor> | readonly ParamGroupInput<AdamOptions>[], options: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 }, options);
  }

  /** Whether weight decay is decoupled from the gradient (AdamW). */
  protected get decoupledWeightDecay(): boolean {
    return false;
  }

  protected validate(g: ParamGroup<AdamOptions>, where: string): void {
    nonNegative(g.lr, `${where}.lr`);
    nonNegative(g.eps, `${where}.eps`);
    nonNegative(g.weightDecay, `${where}.weightDecay`);
    if (!Array.isArray(g.betas) || g.betas.length !== 2)
      throw new TypeError(`${where}.betas must be a pair [β₁, β₂], got ${describe(g.betas)}`);
    g.betas.forEach((b, i) => {
      if (!(typeof b === "number" && b >= 0 && b < 1))
        throw new RangeError(`${where}.betas[${i}] must be in [0, 1), got ${b}`);
    });
  }

  step(): void {
    for (const group of this.paramGroups) {
      const [beta1, beta2] = group.betas;
      const b1 = f32(beta1);
      const b2 = f32(beta2);
      const oneMinusB1 = f32(1 - beta1);
      const oneMinusB2 = f32(1 - beta2);
      const eps = f32(group.eps);
      const wd = f32(group.weightDecay);
      const decay = f32(1 - group.lr * group.weightDecay);
      for (const p of group.params) {
        if (p.grad === null) continue;
        const w = p.data;
        const grad = p.grad.data;
        let state = this.state.get(p);
        if (state === undefined) {
          state = { step: 0, expAvg: new Float32Array(w.length), expAvgSq: new Float32Array(w.length) };
          this.state.set(p, state);
        }
        state.step += 1;
        const stepSize = f32(-group.lr / (1 - beta1 ** state.step));
        const correction2 = f32(Math.sqrt(1 - beta2 ** state.step));
        const { expAvg: m, expAvgSq: v } = state;
        const l2 = group.weightDecay !== 0 && !this.decoupledWeightDecay;
        const decoupled = group.weightDecay !== 0 && this.decoupledWeightDecay;
        for (let i = 0; i < w.length; i++) {
          if (decoupled) w[i] = f32(w[i] * decay);
          const g = l2 ? f32(grad[i] + wd * w[i]) : grad[i];
          m[i] = f32(f32(m[i] * b1) + oneMinusB1 * g);
          v[i] = f32(f32(v[i] * b2) + f32(f32(oneMinusB2 * g) * g));
          const denom = f32(f32(f32(Math.sqrt(v[i])) / correction2) + eps);
          w[i] = f32(w[i] + f32(f32(stepSize * m[i]) / denom));
        }
      }
    }
  }
}

/** torch.optim.AdamW: Adam with decoupled weight decay (default 0.01) applied to p before the update. */
export class AdamW extends Adam {
  constructor(params: Iterable<Tensor> | readonly ParamGroupInput<AdamOptions>[], options: Partial<AdamOptions> = {}) {
    super(params, {
      weightDecay: 1e-2,
      ...readOptions<AdamOptions>(options, ["lr", "betas", "eps", "weightDecay"], "AdamW options"),
    });
  }

  protected override get decoupledWeightDecay(): boolean {
    return true;
  }
}

function nonNegative(value: unknown, where: string): void {
  if (!(typeof value === "number" && Number.isFinite(value) && value >= 0)) {
    throw new RangeError(`${where} must be a finite number ≥ 0, got ${describe(value)}`);
  }
}

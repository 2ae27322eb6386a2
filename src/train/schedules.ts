/**
 * Learning-rate schedules as PyTorch's LambdaLR runs them: each group's lr is its initial lr times
 * a factor of the step count, set at construction (step 0) and after every `step()`. So the
 * optimiser's first update uses factor(0), the next factor(1), and so on. Also torch.linspace's
 * float32 values, for pyvene's temperature annealing.
 */
import type { HasParamGroups } from "./optimizers.js";

export interface LRScheduler {
  /** Advances one optimiser step and sets the groups' learning rates for the next update. */
  step(): void;
  /** The learning rate of each group, as last set. */
  lastLr(): number[];
}

/** torch.optim.lr_scheduler.LambdaLR: lr = initial lr × factor(step). */
export class LambdaLR implements LRScheduler {
  private readonly baseLrs: number[];
  /** Steps taken so far (PyTorch's last_epoch). */
  stepCount = 0;

  constructor(
    private readonly optimizer: HasParamGroups,
    private readonly factor: (step: number) => number,
  ) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.apply();
  }

  step(): void {
    this.stepCount += 1;
    this.apply();
  }

  lastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  private apply(): void {
    const f = this.factor(this.stepCount);
    if (!Number.isFinite(f))
      throw new RangeError(`LambdaLR: the factor at step ${this.stepCount} is ${f} (expected a finite number)`);
    this.optimizer.paramGroups.forEach((g, i) => (g.lr = this.baseLrs[i] * f));
  }
}

/**
 * The factor of HF's get_linear_schedule_with_warmup at a step: step/warmup while step < warmup,
 * then (total − step)/(total − warmup), never below 0. warmup may be fractional (pyvene passes
 * 0.1·total); the denominators are at least 1, as in HF.
 */
export function linearWarmupFactor(step: number, numWarmupSteps: number, numTrainingSteps: number): number {
  if (step < numWarmupSteps) return step / Math.max(1, numWarmupSteps);
  return Math.max(0, (numTrainingSteps - step) / Math.max(1, numTrainingSteps - numWarmupSteps));
}

/**
 * HF transformers' get_linear_schedule_with_warmup: linear warm-up from 0,
 * then linear decay to 0 at numTrainingSteps.
 */
export function linearScheduleWithWarmup(
  optimizer: HasParamGroups,
  numWarmupSteps: number,
  numTrainingSteps: number,
): LambdaLR {
  for (const [name, value] of [
    ["numWarmupSteps", numWarmupSteps],
    ["numTrainingSteps", numTrainingSteps],
  ] as const) {
    if (!(Number.isFinite(value) && value >= 0))
      throw new RangeError(`linearScheduleWithWarmup: ${name} must be a finite number ≥ 0, got ${value}`);
  }
  return new LambdaLR(optimizer, (step) => linearWarmupFactor(step, numWarmupSteps, numTrainingSteps));
}

/** HF transformers' get_constant_schedule: the learning rate never changes. */
export function constantSchedule(optimizer: HasParamGroups): LambdaLR {
  return new LambdaLR(optimizer, () => 1);
}

/**
 * torch.linspace(start, end, steps) in float32, by the formula of PyTorch's CPU kernel:
 * step = (end − start)/(steps − 1); the first half counts up from start, the second half down
 * from end, so both ends are exact.
 */
export function linspace(start: number, end: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 0)
    throw new RangeError(`linspace: steps must be a non-negative integer, got ${steps}`);
  const f32 = Math.fround;
  const a = f32(start);
  const b = f32(end);
  if (steps === 1) return [a];
  const delta = f32(f32(b - a) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  return Array.from({ length: steps }, (_, i) =>
    i < halfway ? f32(a + f32(delta * i)) : f32(b - f32(delta * (steps - i - 1))),
  );
}

/**
 * Learning-rate schedule of the training loop, per optimizer step t = 1, 2, …, steps (environment-
 * agnostic; the PyTorch trainer implements the same formulas):
 *
 *   warmup (W = warmupSteps > 0, t ≤ W):  lr · t / W                     (linear; step W reaches lr)
 *   then, u = t − W (steps after the warmup):
 *     constant:      lr
 *     inverse_sqrt:  lr · √(τ / t)             τ = max(W, 1)             (fairseq's inverse-sqrt, continuous at W; W = 0: lr/√t)
 *     cosine:        lr · ½ (1 + cos(π · (u − 1) / max(1, steps − W)))   (first step after the warmup at lr,
 *                                                                         the last one just above 0: no wasted step)
 */
import type { LrSchedule } from './config';

export interface ScheduleSpec {
  lr: number;
  warmupSteps: number;
  schedule: LrSchedule;
  /** total optimizer steps (cosine's horizon) */
  steps: number;
}

export function learningRate(s: ScheduleSpec, t: number): number {
  if (!(Number.isInteger(t) && t >= 1)) throw new Error(`learningRate: step ${t} must be an integer ≥ 1`);
  const W = s.warmupSteps;
  if (W > 0 && t <= W) return (s.lr * t) / W;
  const u = t - W;
  switch (s.schedule) {
    case 'constant':
      return s.lr;
    case 'inverse_sqrt': {
      const tau = Math.max(W, 1);
      return s.lr * Math.sqrt(tau / Math.max(t, tau));
    }
    case 'cosine': {
      const span = Math.max(1, s.steps - W);
      const p = Math.min(1, (u - 1) / span);
      return s.lr * 0.5 * (1 + Math.cos(Math.PI * p));
    }
    default:
      throw new Error(`learningRate: unknown schedule ${String(s.schedule)}`);
  }
}

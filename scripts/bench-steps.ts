import type { GpuRuntime } from '../src/gpu/runtime';

/** The benches' training step: forward + backward + AdamW, awaited on the device once; `onStep` sees each step's wall ms. */
export async function timedSteps(
  dec: { forward(s: number): void; backward(s: number): void; optimizerStep(s: number): void },
  drt: GpuRuntime,
  warmup: number,
  steps: number,
  onStep: (s: number, ms: number, warm: boolean) => void | Promise<void>,
): Promise<number[]> {
  const times: number[] = [];
  for (let s = 1; s <= warmup + steps; s++) {
    const ts = performance.now();
    dec.forward(s);
    dec.backward(s);
    dec.optimizerStep(s);
    await drt.sync();
    const ms = performance.now() - ts;
    if (s > warmup) times.push(ms);
    await onStep(s, ms, s <= warmup);
  }
  return times;
}

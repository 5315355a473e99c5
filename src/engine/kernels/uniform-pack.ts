// Uniform packing for the kernels that write their uniforms as words (rng, lora, kl, adamw, attention);
// the other shared helpers are in kernel-util.ts.
import type { GpuRuntime } from '../../gpu/runtime';

/** Packs u32 / f32 words in declaration order (every field 4 bytes; pad to 16 B at the end). */
export class UniformWords {
  private readonly words: number[] = [];
  private readonly kinds: ('u' | 'f')[] = [];
  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`uniform u32 out of range: ${v}`);
    this.words.push(v);
    this.kinds.push('u');
    return this;
  }
  f32(v: number): this {
    this.words.push(v);
    this.kinds.push('f');
    return this;
  }
  bytes(): ArrayBuffer {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const u = new Uint32Array(buf);
    const f = new Float32Array(buf);
    this.words.forEach((w, i) => {
      if (this.kinds[i] === 'u') u[i] = w;
      else f[i] = w;
    });
    return buf;
  }
}

/** A uniform buffer holding `w` (COPY_DST, so `rewrite` can update it between dispatches). */
export function uniformFrom(rt: GpuRuntime, label: string, w: UniformWords): GPUBuffer {
  return rt.uniform(label, new Uint8Array(w.bytes()));
}

export function rewriteUniform(rt: GpuRuntime, buf: GPUBuffer, w: UniformWords): void {
  rt.device.queue.writeBuffer(buf, 0, w.bytes());
}

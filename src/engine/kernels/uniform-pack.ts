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

/** One field of a uniform struct: name (as in WGSL), type, and a short comment carried into the WGSL. */
export type UniformField<N extends string> = readonly [name: N, type: 'u32' | 'f32', comment?: string];

/**
 * A uniform struct declared once: `wgsl()` emits the WGSL struct (padded to 16 bytes), `pack()` packs values
 * BY NAME (every field required, no unknown ones), so the TS side and the shader cannot drift apart. A shader
 * file holds `// @uniform <Name>` where the struct goes; `inject()` puts it there.
 */
export class UniformStruct<N extends string> {
  constructor(
    readonly name: string,
    readonly fields: readonly UniformField<N>[],
  ) {
    const seen = new Set<string>();
    for (const [n] of fields) {
      if (seen.has(n)) throw new Error(`uniform ${name}: field ${n} twice`);
      seen.add(n);
    }
  }

  private get pad(): number {
    return (4 - (this.fields.length % 4)) % 4;
  }

  wgsl(): string {
    const w = Math.max(...this.fields.map(([n, t]) => n.length + t.length + 3));
    const lines = this.fields.map(([n, t, c]) => `  ${`${n}: ${t},`.padEnd(w)}${c ? ` // ${c}` : ''}`.trimEnd());
    for (let i = 0; i < this.pad; i++) lines.push(`  _tail${i}: u32,`);
    return `struct ${this.name} {\n${lines.join('\n')}\n}`;
  }

  /** `src` with its `// @uniform <Name>` line replaced by the struct (an error when the marker is missing). */
  inject(src: string, file: string): string {
    const marker = `// @uniform ${this.name}`;
    if (!src.includes(marker)) throw new Error(`${file}: no '${marker}' line for the generated struct`);
    // the whole marker line goes (it may carry a comment after the name)
    return src.replace(new RegExp(`^[ \\t]*${marker}\\b.*$`, 'm'), this.wgsl());
  }

  pack(values: Readonly<Record<N, number | boolean>>): UniformWords {
    const extra = Object.keys(values).filter((k) => !this.fields.some(([n]) => n === k));
    if (extra.length) throw new Error(`uniform ${this.name}: unknown field(s) ${extra.join(', ')}`);
    const w = new UniformWords();
    for (const [n, t] of this.fields) {
      const v = values[n];
      if (v === undefined) throw new Error(`uniform ${this.name}: ${n} not given`);
      const x: number = typeof v === 'boolean' ? (v ? 1 : 0) : (v as number);
      if (t === 'u32') w.u32(x);
      else w.f32(x);
    }
    for (let i = 0; i < this.pad; i++) w.u32(0);
    return w;
  }
}

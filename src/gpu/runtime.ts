/**
 * Small kernel runner shared by all WGSL kernels:
 *  - pipelines compiled once and cached by label (label = kernel name, shown in every error),
 *  - WGSL compile errors surfaced with kernel name, line and column (error scopes + compilation info),
 *  - buffer helpers (upload, uniforms, outputs, readback),
 *  - dispatch + wall-clock timing,
 *  - GPU-buffer memory accounting: every buffer a runtime creates (upload, storage, uniform,
 *    readback staging) is counted until its destroy(); `memory()` gives live and peak bytes (the
 *    buffers' allocated sizes — what the app asked the device for, not the driver's overhead),
 *    per DEVICE: all GpuRuntimes of one device (e.g. the engine's BatchingRuntime) share the count.
 */

export interface KernelSpec {
  /** Unique kernel name; the pipeline cache key and the label of every GPU object it creates. */
  label: string;
  /** WGSL source. */
  code: string;
  entryPoint?: string;
  /** Pipeline-overridable constants (`override` declarations). */
  constants?: Record<string, number>;
}

export class WgslCompileError extends Error {
  override name = 'WgslCompileError';
}

/** Bytes rounded up to a multiple of 4 (and at least 4: zero-sized bindings are invalid). */
const padBytes = (n: number): number => Math.max(4, Math.ceil(n / 4) * 4);

function formatCompileMessages(label: string, code: string, msgs: readonly GPUCompilationMessage[]): string {
  const lines = code.split('\n');
  return msgs
    .map((m) => {
      const src = m.lineNum > 0 ? (lines[m.lineNum - 1] ?? '') : '';
      const caret = m.linePos > 0 ? ' '.repeat(m.linePos - 1) + '^' : '';
      return `${label}.wgsl:${m.lineNum}:${m.linePos} ${m.type}: ${m.message}${src ? `\n  ${src}\n  ${caret}` : ''}`;
    })
    .join('\n');
}

/** GPU-buffer bytes created through the GpuRuntimes of a device (see GpuRuntime.memory). */
export interface GpuMemoryStats {
  /** Bytes of buffers created and not yet destroyed. */
  liveBytes: number;
  /** Maximum of liveBytes since creation or the last resetPeak(). */
  peakBytes: number;
  liveBuffers: number;
  /** Largest live buffers (label, bytes), biggest first — what the memory is. */
  top: { label: string; bytes: number }[];
}

interface MemoryAccount {
  live: Map<GPUBuffer, number>;
  liveBytes: number;
  peakBytes: number;
}
const accounts = new WeakMap<GPUDevice, MemoryAccount>();
/** softwareAdapter decided for a device by setSoftwareAdapter (shared by all its GpuRuntimes). */
const softwareByDevice = new WeakMap<GPUDevice, boolean>();
/** A lower cap on buffer and binding sizes for a device (GpuRuntime.capBufferBytes). */
const capByDevice = new WeakMap<GPUDevice, number>();

/** The buffer limits the engine plans with: the device's, lowered by GpuRuntime.capBufferBytes if set. */
export interface BufferLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  minStorageBufferOffsetAlignment: number;
}

export function bufferLimits(device: GPUDevice): BufferLimits {
  const cap = capByDevice.get(device) ?? Infinity;
  return {
    maxBufferSize: Math.min(device.limits.maxBufferSize, cap),
    maxStorageBufferBindingSize: Math.min(device.limits.maxStorageBufferBindingSize, cap),
    minStorageBufferOffsetAlignment: device.limits.minStorageBufferOffsetAlignment,
  };
}

export class GpuRuntime {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly codeByLabel = new Map<string, string>();
  private readonly acct: MemoryAccount;

  constructor(readonly device: GPUDevice) {
    let a = accounts.get(device);
    if (!a) {
      a = { live: new Map(), liveBytes: 0, peakBytes: 0 };
      accounts.set(device, a);
    }
    this.acct = a;
  }

  /**
   * True on a CPU (software) adapter — SwiftShader, llvmpipe, lavapipe, or a fallback adapter —
   * where some kernels pick a variant tuned for SIMD-across-invocations CPUs (see matmul_bias.wgsl
   * main_rt). From GPUDevice.adapterInfo, unless setSoftwareAdapter() decided it for the device (browsers
   * may hide the vendor: then src/gpu/probe-variant.ts times both variants); false when unknown.
   */
  get softwareAdapter(): boolean {
    const decided = softwareByDevice.get(this.device);
    if (decided !== undefined) return decided;
    if (this.software === undefined) {
      const info = this.adapterInfo();
      this.software = info
        ? Boolean(info.isFallbackAdapter) ||
          /swiftshader|llvmpipe|lavapipe|softpipe|software/i.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`)
        : false;
    }
    return this.software;
  }
  private software: boolean | undefined;

  /**
   * Whether adapterInfo names the adapter (vendor/description/fallback flag), so softwareAdapter is
   * read from it rather than guessed. Chromium hides the vendor by default ("not disclosed").
   */
  get adapterKnown(): boolean {
    if (softwareByDevice.has(this.device)) return true;
    const info = this.adapterInfo();
    return Boolean(info && (info.isFallbackAdapter || `${info.vendor}${info.architecture}${info.device}${info.description}`.trim()));
  }

  /** Decide the kernel variants for every GpuRuntime of this device (e.g. from a timing probe). */
  setSoftwareAdapter(software: boolean): void {
    softwareByDevice.set(this.device, software);
  }

  private adapterInfo(): (GPUAdapterInfo & { isFallbackAdapter?: boolean }) | undefined {
    return (this.device as GPUDevice & { adapterInfo?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).adapterInfo;
  }

  /**
   * Plan every buffer and binding of this device as if it allowed at most `bytes` (null: the device's own
   * limits). WebGPU cannot request limits below the defaults, so this is how the engine is run as on a
   * phone or an integrated GPU (tests force 16 MiB): tensors over it are split (src/engine/weights.ts
   * row parts) and any buffer created over it throws, naming it.
   */
  capBufferBytes(bytes: number | null): void {
    if (bytes === null) capByDevice.delete(this.device);
    else capByDevice.set(this.device, bytes);
  }

  /** The buffer limits in force (bufferLimits of the device). */
  get limits(): BufferLimits {
    return bufferLimits(this.device);
  }

  /** A buffer over maxBufferSize fails later, as a validation error that names no tensor: refuse it here. */
  private checkSize(label: string, size: number): void {
    const max = this.limits.maxBufferSize;
    if (size > max)
      throw new Error(`${label}: a buffer of ${size} bytes is over this device's maxBufferSize (${max} bytes); the tensor must be split`);
  }

  /** Count `buf` as live until its destroy() (which is wrapped to uncount it, once). */
  private track(buf: GPUBuffer): GPUBuffer {
    const a = this.acct;
    const bytes = buf.size;
    a.live.set(buf, bytes);
    a.liveBytes += bytes;
    if (a.liveBytes > a.peakBytes) a.peakBytes = a.liveBytes;
    const destroy = buf.destroy.bind(buf);
    buf.destroy = () => {
      if (a.live.delete(buf)) a.liveBytes -= bytes;
      destroy();
    };
    return buf;
  }

  /** Live / peak bytes of the GPU buffers created through the GpuRuntimes of this device. */
  memory(topN = 8): GpuMemoryStats {
    const a = this.acct;
    const top = [...a.live.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, topN)
      .map(([b, bytes]) => ({ label: b.label, bytes }));
    return { liveBytes: a.liveBytes, peakBytes: a.peakBytes, liveBuffers: a.live.size, top };
  }

  /** Restart peak tracking (for the whole device) from the current live bytes. */
  resetPeak(): void {
    this.acct.peakBytes = this.acct.liveBytes;
  }

  /** Compile (once) and return the compute pipeline for `spec`, cached by `spec.label`. */
  pipeline(spec: KernelSpec): Promise<GPUComputePipeline> {
    const key = spec.constants ? `${spec.label}${JSON.stringify(spec.constants)}` : spec.label;
    const prev = this.codeByLabel.get(spec.label);
    if (prev !== undefined && prev !== spec.code) {
      throw new Error(`GpuRuntime: kernel label '${spec.label}' reused for different WGSL code`);
    }
    this.codeByLabel.set(spec.label, spec.code);
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.compile(spec);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key)); // allow a retry after a failure
    }
    return p;
  }

  private async compile(spec: KernelSpec): Promise<GPUComputePipeline> {
    const { device } = this;
    const { label, code } = spec;
    device.pushErrorScope('internal');
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ label, code });
    const info = await module.getCompilationInfo();
    let pipeline: GPUComputePipeline | undefined;
    let pipelineError: string | undefined;
    try {
      pipeline = await device.createComputePipelineAsync({
        label,
        layout: 'auto',
        compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: spec.constants },
      });
    } catch (e) {
      pipelineError = (e as Error).message;
    }
    const validation = await device.popErrorScope();
    const internal = await device.popErrorScope();
    const errs = info.messages.filter((m) => m.type === 'error');
    if (errs.length || pipelineError || validation || internal || !pipeline) {
      const parts = [`WGSL kernel '${label}' failed to compile:`];
      if (errs.length) parts.push(formatCompileMessages(label, code, errs));
      else if (validation) parts.push(validation.message);
      if (internal) parts.push(`internal: ${internal.message}`);
      if (pipelineError && !errs.length) parts.push(`pipeline: ${pipelineError}`);
      throw new WgslCompileError(parts.join('\n'));
    }
    const warns = info.messages.filter((m) => m.type === 'warning');
    if (warns.length) console.warn(formatCompileMessages(label, code, warns));
    return pipeline;
  }

  /** Storage buffer initialised with `data` (COPY_SRC|COPY_DST too, for readback and reuse). */
  upload(label: string, data: ArrayBufferView, extraUsage = 0): GPUBuffer {
    const size = padBytes(data.byteLength);
    this.checkSize(label, size);
    const buf = this.track(
      this.device.createBuffer({
        label,
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | extraUsage,
        mappedAtCreation: true,
      }),
    );
    new Uint8Array(buf.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    buf.unmap();
    return buf;
  }

  /** Uninitialised (zeroed) storage buffer of `byteLength` bytes. */
  storage(label: string, byteLength: number, extraUsage = 0): GPUBuffer {
    this.checkSize(label, padBytes(byteLength));
    return this.track(
      this.device.createBuffer({
        label,
        size: padBytes(byteLength),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | extraUsage,
      }),
    );
  }

  /** Uniform buffer from raw words (u32 or f32 views; size padded to 16 bytes). */
  uniform(label: string, data: ArrayBufferView): GPUBuffer {
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    const buf = this.track(
      this.device.createBuffer({
        label,
        size,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        mappedAtCreation: true,
      }),
    );
    new Uint8Array(buf.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    buf.unmap();
    return buf;
  }

  /** Bind group for group 0 of `pipeline`, binding i = buffers[i]. */
  bindGroup(label: string, pipeline: GPUComputePipeline, buffers: readonly GPUBuffer[]): GPUBindGroup {
    return this.device.createBindGroup({
      label,
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  }

  /** Encode one compute pass: `pipeline` with `bindGroup` over `workgroups` and submit it. */
  dispatch(label: string, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, workgroups: readonly [number, number?, number?]): void {
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = workgroups;
    if (x > max || y > max || z > max) {
      throw new Error(`${label}: dispatch ${x}×${y}×${z} exceeds maxComputeWorkgroupsPerDimension ${max}`);
    }
    const enc = this.device.createCommandEncoder({ label });
    const pass = enc.beginComputePass({ label });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
    pass.end();
    this.device.queue.submit([enc.finish()]);
  }

  /** Copy `buffer` (first `byteLength` bytes) back to the CPU. */
  async readBytes(buffer: GPUBuffer, byteLength = buffer.size): Promise<ArrayBuffer> {
    const size = padBytes(byteLength);
    const staging = this.track(
      this.device.createBuffer({
        label: `${buffer.label}:readback`,
        size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      }),
    );
    const enc = this.device.createCommandEncoder({ label: `${buffer.label}:readback` });
    enc.copyBufferToBuffer(buffer, 0, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0, byteLength);
    staging.unmap();
    staging.destroy();
    return out;
  }

  async readF32(buffer: GPUBuffer, length?: number): Promise<Float32Array> {
    const n = length ?? Math.floor(buffer.size / 4);
    return new Float32Array(await this.readBytes(buffer, n * 4));
  }

  /** Resolves when all submitted work has finished. */
  sync(): Promise<void> {
    return this.device.queue.onSubmittedWorkDone();
  }

  /**
   * Wall-clock timing of `run` (which should submit GPU work): `warmup` untimed runs, then `iters`
   * timed runs, each awaited to completion. Returns per-run milliseconds.
   */
  async time(run: () => void, iters = 3, warmup = 1): Promise<number[]> {
    for (let i = 0; i < warmup; i++) {
      run();
      await this.sync();
    }
    const ms: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      run();
      await this.sync();
      ms.push(performance.now() - t0);
    }
    return ms;
  }
}

/**
 * Command batching for the engine assembly, and the one elementwise kernel the decoder needs.
 *
 * BatchingRuntime: a GpuRuntime whose dispatch() RECORDS into one open compute pass instead of
 * submitting one command buffer per dispatch (what the kernels' prepared calls do through
 * GpuRuntime.dispatch). flush() ends the pass and submits everything as one command buffer.
 * WebGPU makes each dispatch its own usage scope, so storage writes of one dispatch are visible to
 * the next within the pass (the implementation inserts the barriers).
 *
 * RULE (uniforms): the kernels rewrite their uniform buffers with queue.writeBuffer, which takes
 * effect at submit time of the NEXT submission. A prepared call whose uniform is rewritten (lora
 * forward/backward with a step, adamw step) must therefore run at most once per batch; the decoder
 * flushes after each phase (forward, backward, optimizer step), where every such call ran once.
 * readBytes()/sync() flush first.
 *
 * Buffer copies (copyBufferToBuffer) are recorded between compute passes with copy().
 */
import { GpuRuntime, type KernelSpec } from '../gpu/runtime';
import { bindAt, checkDims, needElems, grid1d } from './kernels/kernel-util';

export class BatchingRuntime extends GpuRuntime {
  private enc: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** Counters for logs: dispatches recorded and command buffers submitted. */
  dispatches = 0;
  submits = 0;
  /**
   * Profiling (diagnostics only): when set, every dispatch is submitted on its own and its
   * completion time attributed to `profileKey(label)`; ms accumulate in `profile`.
   */
  profileKey: ((label: string) => string) | null = null;
  readonly profile = new Map<string, { ms: number; n: number }>();
  private lastDone = 0;

  constructor(
    device: GPUDevice,
    readonly batchLabel = 'engine-batch',
  ) {
    super(device);
  }

  private encoder(): GPUCommandEncoder {
    this.enc ??= this.device.createCommandEncoder({ label: this.batchLabel });
    return this.enc;
  }

  override dispatch(
    label: string,
    pipeline: GPUComputePipeline,
    bindGroup: GPUBindGroup,
    workgroups: readonly [number, number?, number?],
  ): void {
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = workgroups;
    if (x > max || y > max || z > max) {
      throw new Error(`${label}: dispatch ${x}×${y}×${z} exceeds maxComputeWorkgroupsPerDimension ${max}`);
    }
    if (!(x > 0 && y > 0 && z > 0)) return;
    if (this.profileKey) {
      this.flush();
      super.dispatch(label, pipeline, bindGroup, workgroups);
      this.dispatches++;
      const key = this.profileKey(label);
      void this.device.queue.onSubmittedWorkDone().then(() => {
        const now = performance.now();
        const e = this.profile.get(key) ?? { ms: 0, n: 0 };
        e.ms += now - Math.max(this.lastDone, this.profileStart);
        e.n++;
        this.profile.set(key, e);
        this.lastDone = now;
      });
      return;
    }
    this.pass ??= this.encoder().beginComputePass({ label: this.batchLabel });
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
  }

  private profileStart = 0;

  /** Start profiling (see profileKey); resets the table. */
  startProfile(key: (label: string) => string): void {
    this.flush();
    this.profile.clear();
    this.profileKey = key;
    this.profileStart = performance.now();
    this.lastDone = 0;
  }

  /** Record a buffer copy (ends the open compute pass; the next dispatch opens a new one). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    if (size === 0) return;
    this.endPass();
    this.encoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Submit everything recorded so far as one command buffer. */
  flush(): void {
    this.endPass();
    if (this.enc) {
      this.device.queue.submit([this.enc.finish()]);
      this.enc = null;
      this.submits++;
    }
  }

  override readBytes(buffer: GPUBuffer, byteLength = buffer.size): Promise<ArrayBuffer> {
    this.flush();
    return super.readBytes(buffer, byteLength);
  }

  override sync(): Promise<void> {
    this.flush();
    return super.sync();
  }
}

// Residual add Y = A + B (one f32 rounding per element, as PyTorch's `x + y`). Inline WGSL: the
// decoder assembly's only kernel of its own (the residual stream needs an add in the forward; the
// backward accumulates in place through the layernorm/linear kernels' accumulate modes).
const ADD_WGSL = /* wgsl */ `
struct P { n: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) { Y[i] = A[i] + B[i]; }
}
`;

export function addKernel(): KernelSpec {
  return { label: 'engine_decoder.add', code: ADD_WGSL };
}

/** Prepared Y (n,) = A (n,) + B (n,) on existing buffers (Y distinct from A and B). */
export async function prepareAdd(
  rt: GpuRuntime,
  n: number,
  b: { a: GPUBuffer; b: GPUBuffer; y: GPUBuffer },
  label = 'engine_decoder.add',
): Promise<{ run(): void; destroy(): void }> {
  checkDims(label, { n });
  needElems(label, b.a, n, 'A');
  needElems(label, b.b, n, 'B');
  needElems(label, b.y, n, 'Y');
  const pipeline = await rt.pipeline(addKernel());
  const params = rt.uniform(`${label}:params`, new Uint32Array([n, 0, 0, 0]));
  const bg = bindAt(rt, `${label}:bind`, pipeline, [
    [0, params],
    [1, b.a],
    [2, b.b],
    [3, b.y],
  ]);
  const wg = grid1d(n, 256);
  return { run: () => rt.dispatch(label, pipeline, bg, wg), destroy: () => params.destroy() };
}

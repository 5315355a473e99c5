// The merged export's parts without the real model's weights: the ONNX initializer patch on a hand-built
// ModelProto (f32 and f16, [out, in] and transposed, a subgraph initializer, a quantized look-alike left
// alone), the CLI's usage errors, and SNR pruning of a BLoRA run with the bytes it saves (raw and deflated).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { deflateSync } from 'fflate';
import { main } from '../../src/cli/main';
import { runExport } from '../../src/cli/export';
import { encodeFloats, f64ToHalfBits, patchOnnxWeights, type MergedModule } from '../../src/export/merged';
import { findFloatInitializers } from '../../src/export/onnx';
import { exportAdapter, type AdapterExport } from '../../src/export/peft';
import { mulberry32 } from '../../src/engine/adapters';
import { requireModel } from '../support/env';

const tmp = mkdtempSync(join(tmpdir(), 'blora-export-units-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---- a minimal protobuf writer for the test's ModelProto
const varint = (v: number): number[] => {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
};
const field = (f: number, bytes: Uint8Array | number[]): number[] => [...varint(f * 8 + 2), ...varint(bytes.length), ...bytes];
const vfield = (f: number, v: number): number[] => [...varint(f * 8), ...varint(v)];
const str = (s: string) => [...new TextEncoder().encode(s)];
function tensorProto(name: string, dims: number[], dataType: number, raw: Uint8Array): number[] {
  return [...dims.flatMap((d) => vfield(1, d)), ...vfield(2, dataType), ...field(8, str(name)), ...field(9, raw)];
}

test('patchOnnxWeights: finds W by value in f32 / f16, either layout, in subgraphs; leaves others alone', () => {
  const rnd = mulberry32(3);
  const mod = (name: string, nOut: number, nIn: number): MergedModule => {
    const W = Float32Array.from({ length: nOut * nIn }, () => Math.fround(rnd() - 0.5));
    // f16-exact values, as the prepared model's weights are (else the f16 graph could not hold W exactly)
    const Wh = W.map((x) => {
      const h = f64ToHalfBits(x);
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 31;
      return s * (e ? (1 + (h & 1023) / 1024) * 2 ** (e - 15) : (h & 1023) * 2 ** -24);
    });
    const merged = Float64Array.from(Wh, (x, i) => x + 0.001 * ((i % 7) - 3));
    return { name, nOut, nIn, W: Wh, merged };
  };
  const q = mod('q', 4, 3); // non-square
  const v = mod('v', 3, 3); // square: the layout is found by value
  const T = (m: MergedModule, vals: ArrayLike<number>) => {
    const t = new Float64Array(m.nOut * m.nIn);
    for (let o = 0; o < m.nOut; o++) for (let i = 0; i < m.nIn; i++) t[i * m.nOut + o] = vals[o * m.nIn + i];
    return t;
  };
  const f64 = (x: ArrayLike<number>) => Float64Array.from(x as ArrayLike<number>);
  const subgraph = field(5, tensorProto('v_in_branch', [3, 3], 10, encodeFloats(T(v, v.W), 'F16')));
  const node = field(5, [...field(1, str('then_branch')), ...field(6, subgraph)]); // AttributeProto.g
  const graph = [
    ...field(5, tensorProto('q_T', [3, 4], 1, encodeFloats(T(q, q.W), 'F32'))),
    ...field(5, tensorProto('v_plain', [3, 3], 1, encodeFloats(f64(v.W), 'F32'))),
    ...field(5, tensorProto('int8_like', [3, 3], 3, new Uint8Array(9))),
    ...field(1, node),
  ];
  const model = new Uint8Array([...vfield(1, 8), ...field(7, graph)]);
  const inits = findFloatInitializers(model, 'test.onnx');
  assert.deepEqual(
    inits.map((t) => [t.name, t.dims, t.dataType]),
    [
      ['q_T', [3, 4], 1],
      ['v_plain', [3, 3], 1],
      ['v_in_branch', [3, 3], 10],
    ],
  );
  const r = patchOnnxWeights(model, [q, v], 'test.onnx');
  assert.deepEqual(r.missing, []);
  assert.deepEqual(r.found.get('q'), ['q_T (transposed)']);
  assert.deepEqual(r.found.get('v'), ['v_plain', 'v_in_branch (transposed)']);
  assert.equal(r.bytes.length, model.length);
  const at = (name: string) => {
    const t = findFloatInitializers(r.bytes).find((x) => x.name === name)!;
    return r.bytes.subarray(t.offset, t.offset + t.length);
  };
  assert.deepEqual(at('q_T'), encodeFloats(T(q, q.merged), 'F32'));
  assert.deepEqual(at('v_plain'), encodeFloats(v.merged, 'F32'));
  assert.deepEqual(at('v_in_branch'), encodeFloats(T(v, v.merged), 'F16'));
  const other = mod('other', 4, 3);
  assert.deepEqual(patchOnnxWeights(model, [other], 'test.onnx').missing, ['other']);
  assert.throws(() => findFloatInitializers(new Uint8Array([0x08, 0x01]), 'x.onnx'), /x\.onnx: no graph/);
});

test('blora-studio export: usage errors name the flag and the cause (exit 2)', async () => {
  const err: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    assert.equal(await main(['export', '--format', 'hf', '--out', join(tmp, 'x')]), 2);
    assert.equal(await main(['export', '--run', join(tmp, 'nope'), '--format', 'hf', '--out', join(tmp, 'x')]), 2);
    mkdirSync(join(tmp, 'empty'), { recursive: true });
    assert.equal(await main(['export', '--run', join(tmp, 'empty'), '--format', 'hf', '--out', join(tmp, 'x')]), 2);
    assert.equal(await main(['export', '--run', join(tmp, 'empty'), '--format', 'onnx', '--out', join(tmp, 'x')]), 2);
    assert.equal(await main(['export', '--run', join(tmp, 'empty'), '--format', 'hf', '--out', join(tmp, 'x'), '--prune-snr', '-1']), 2);
  } finally {
    process.stderr.write = orig;
  }
  const all = err.join('');
  assert.match(all, /export needs --run DIR/);
  assert.match(all, /--run .*nope: no such folder/);
  assert.match(all, /--run .*empty: no adapter\/adapter_config.json/);
  assert.match(all, /--format onnx: expected one of hf, transformersjs, ct2, peft/);
  assert.match(all, /--prune-snr must be a number ≥ 0/);
});

test('SNR-pruned BLoRA run: the PEFT export with the bytes it saves (raw and deflated)', async () => {
  const model = requireModel();
  const rnd = mulberry32(11);
  const r = 8;
  const names = [0, 1, 2, 3, 4, 5].flatMap((l) => ['self_attn.q_proj', 'self_attn.v_proj'].map((p) => `model.decoder.layers.${l}.${p}`));
  const u = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rnd());
  const a: AdapterExport = {
    method: 'blora',
    r,
    alpha: 16,
    dropout: 0.05,
    baseModel: 'openai/whisper-base',
    // |μ| up to 0.05, σ = softplus(ρ) ≈ 0.0067 … 0.018: SNR from 0 to ≈ 7
    modules: names.map((name) => ({
      name,
      inFeatures: 512,
      outFeatures: 512,
      A: u(r * 512, -0.05, 0.05),
      B: u(512 * r, -0.05, 0.05),
      rhoA: u(r * 512, -5, -4),
      rhoB: u(512 * r, -5, -4),
    })),
    blora: { priorSigma: 0.01, estimator: 'flipout', bayesianAOnly: false, beta: 1e-4 },
  };
  const run = join(tmp, 'blora-run');
  mkdirSync(join(run, 'adapter'), { recursive: true });
  for (const [f, d] of Object.entries(exportAdapter(a))) writeFileSync(join(run, 'adapter', f), d);
  writeFileSync(join(run, 'experiment.json'), JSON.stringify({ method: 'blora', model }));
  const sizes: string[] = [];
  let prev = Infinity;
  for (const snr of [0, 1, 3]) {
    const e = await runExport({ run, format: 'peft', out: join(tmp, `peft-${snr}`), pruneSnr: snr, log: () => {} });
    const st = e.files.find((f) => f.file === 'adapter_model.safetensors')!;
    const { readFileSync } = await import('node:fs');
    const deflated = deflateSync(new Uint8Array(readFileSync(join(e.out, 'adapter_model.safetensors'))), { level: 9 }).byteLength;
    sizes.push(
      `SNR ${snr}: ${((e.pruned ?? 0) * 100).toFixed(1)} % zeros, adapter_model.safetensors ${st.bytes.toLocaleString('en-US')} bytes, deflated ${deflated.toLocaleString('en-US')} bytes`,
    );
    assert.ok(deflated < prev, 'more pruning, a smaller compressed adapter');
    prev = deflated;
    if (snr) assert.ok(e.pruned! > 0);
  }
  console.log(sizes.join('\n'));
  console.log('merged exports (hf, transformersjs, ct2) keep the size of the model whatever the pruning: see test/export/merged.test.ts');
});

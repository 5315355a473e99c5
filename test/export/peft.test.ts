// The PEFT export on the real Whisper base: Python peft loads what we write, its merged weights equal
// W + (α/r)·B·A computed here, modules we did not adapt stay untouched, and the studio re-imports its
// own export (LoRA and BLoRA) bit for bit.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { exportAdapter, importAdapter, targetModulesRegex, type AdapterExport } from '../../src/export/peft';
import { SafetensorsFile } from '../../src/model/safetensors';
import { requireModel, requirePython } from '../support/env';
import { mulberry32 } from '../support/random';

const MODEL = requireModel();
const tmp = mkdtempSync(join(tmpdir(), 'blora-export-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function randomAdapter(method: 'lora' | 'blora', seed: number): AdapterExport {
  const rnd = mulberry32(seed);
  const u = (n: number, s: number) => Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * s);
  const r = 4;
  const names = [0, 3].flatMap((l) => ['self_attn.q_proj', 'self_attn.v_proj'].map((p) => `model.decoder.layers.${l}.${p}`));
  return {
    method,
    r,
    alpha: 8,
    dropout: 0.05,
    baseModel: 'openai/whisper-base',
    modules: names.map((name) => ({
      name,
      inFeatures: 512,
      outFeatures: 512,
      A: u(r * 512, 0.04),
      B: u(512 * r, 0.02),
      ...(method === 'blora' ? { rhoA: u(r * 512, 5), rhoB: u(512 * r, 5) } : {}),
    })),
    blora: method === 'blora' ? { priorSigma: 0.01, estimator: 'flipout', bayesianAOnly: false, beta: 1e-4 } : undefined,
  };
}

function writeDir(name: string, files: Record<string, Uint8Array | string>): string {
  const dir = join(tmp, name);
  execFileSync('mkdir', ['-p', dir]);
  for (const [f, v] of Object.entries(files)) writeFileSync(join(dir, f), v);
  return dir;
}

describe('PEFT export', () => {
  test('target_modules regex matches exactly the adapted modules', () => {
    const re = targetModulesRegex(['model.decoder.layers.0.self_attn.q_proj', 'model.decoder.layers.5.self_attn.v_proj']);
    const full = new RegExp(`^(?:${re})$`);
    assert.ok(full.test('model.decoder.layers.0.self_attn.q_proj'));
    assert.ok(full.test('model.decoder.layers.5.self_attn.v_proj'));
    assert.ok(!full.test('model.decoder.layers.3.self_attn.q_proj'), 'layer 3 is not adapted');
    assert.ok(!full.test('model.decoder.layers.0.self_attn.v_proj'), 'layer 0 v_proj is not adapted');
    assert.ok(!full.test('model.decoder.layers.3.encoder_attn.q_proj'), 'cross-attention q_proj is not adapted');
    assert.ok(!full.test('model.encoder.layers.3.self_attn.q_proj'), 'encoder is not adapted');
  });

  test('Python peft loads the export; merged weights = W + (α/r)·B·A; other modules untouched', () => {
    const a = randomAdapter('lora', 1);
    const dir = writeDir('lora', exportAdapter(a));
    const out = join(tmp, 'merged.json');
    const names = [
      ...a.modules.map((m) => m.name),
      'model.decoder.layers.3.encoder_attn.q_proj',
      'model.decoder.layers.1.self_attn.q_proj',
    ];
    execFileSync(
      requirePython(),
      [
        '-c',
        `
import json, sys, torch
from transformers import WhisperForConditionalGeneration
from peft import PeftModel
base = WhisperForConditionalGeneration.from_pretrained(sys.argv[1], dtype=torch.float32)
model = PeftModel.from_pretrained(base, sys.argv[2])
lora_modules = sorted(n for n, _ in model.named_modules() if n.endswith("q_proj") or n.endswith("v_proj") if hasattr(_, "lora_A"))
merged = model.merge_and_unload()
sd = merged.state_dict()
res = {"lora_modules": lora_modules, "w": {}}
for n in sys.argv[4:]:
    w = sd[n + ".weight"].double()
    res["w"][n] = {"sum": w.sum().item(), "sumsq": (w * w).sum().item(), "head": w.flatten()[:8].tolist()}
json.dump(res, open(sys.argv[3], "w"))
`,
        MODEL,
        dir,
        out,
        ...names,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TRANSFORMERS_VERBOSITY: 'error' } },
    );
    const py = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(py.lora_modules.length, a.modules.length, `PEFT adapted ${py.lora_modules.join(', ')}`);
    const st = new SafetensorsFile(readFileSync(join(MODEL, 'model.safetensors')));
    const s = a.alpha / a.r;
    let worst = 0;
    for (const n of names) {
      const w = Float64Array.from(st.float32(`${n}.weight`));
      const m = a.modules.find((x) => x.name === n);
      if (m) {
        for (let o = 0; o < m.outFeatures; o++)
          for (let i = 0; i < m.inFeatures; i++) {
            let acc = 0;
            for (let k = 0; k < a.r; k++) acc += m.B[o * a.r + k] * m.A[k * m.inFeatures + i];
            w[o * m.inFeatures + i] += s * acc;
          }
      }
      let sum = 0,
        sumsq = 0;
      for (const v of w) {
        sum += v;
        sumsq += v * v;
      }
      const ref = py.w[n];
      const rel = Math.abs(sumsq - ref.sumsq) / ref.sumsq;
      worst = Math.max(worst, rel);
      assert.ok(rel < 1e-6, `${n}: Σw² ours ${sumsq} vs PEFT ${ref.sumsq}`);
      assert.ok(Math.abs(sum - ref.sum) < 1e-3, `${n}: Σw ours ${sum} vs PEFT ${ref.sum}`);
      for (let i = 0; i < 8; i++) assert.ok(Math.abs(w[i] - ref.head[i]) < 1e-6, `${n}[${i}]: ${w[i]} vs ${ref.head[i]}`);
    }
    console.log(`PEFT merged ${py.lora_modules.length} modules; worst relative Σw² difference ${worst.toExponential(2)}`);
  });

  test('the studio re-imports its own LoRA and BLoRA exports losslessly', () => {
    for (const method of ['lora', 'blora'] as const) {
      const a = randomAdapter(method, 7);
      const files = exportAdapter(a);
      assert.equal('blora_posterior.safetensors' in files, method === 'blora');
      const b = importAdapter(files);
      assert.equal(b.method, method);
      assert.deepEqual({ r: b.r, alpha: b.alpha, dropout: b.dropout }, { r: a.r, alpha: a.alpha, dropout: a.dropout });
      assert.deepEqual(b.blora, a.blora);
      assert.deepEqual(
        b.modules.map((m) => m.name),
        [...a.modules.map((m) => m.name)].sort(),
      );
      for (const m of a.modules) {
        const n = b.modules.find((x) => x.name === m.name)!;
        assert.deepEqual([...n.A], [...m.A]);
        assert.deepEqual([...n.B], [...m.B]);
        if (method === 'blora') {
          assert.deepEqual([...n.rhoA!], [...m.rhoA!]);
          assert.deepEqual([...n.rhoB!], [...m.rhoB!]);
        }
      }
    }
  });
});

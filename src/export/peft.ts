// Export an adapter in PEFT's format, so `PeftModel.from_pretrained(whisper, dir)` loads it:
//   adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in], .lora_B.weight [out, r] (f32)
//   adapter_config.json        peft_type LORA, r, lora_alpha, target_modules (regex), lora_dropout, ...
// BLoRA writes its posterior MEANS there (what evaluation uses: ΔW = s·μ_B·μ_A), and the full posterior
// (ρ of each factor, the prior, the estimator) into blora_posterior.safetensors beside it, so the studio
// re-imports the adapter losslessly while PEFT sees a plain LoRA.

import { SafetensorsFile, writeSafetensors } from '../model/safetensors';

export interface AdapterModule {
  /** HF module name, e.g. "model.decoder.layers.3.self_attn.q_proj". */
  name: string;
  inFeatures: number;
  outFeatures: number;
  /** LoRA A, or BLoRA μ_A: [r, in]. */
  A: Float32Array;
  /** LoRA B, or BLoRA μ_B (or the deterministic B of bayesian_a_only): [out, r]. */
  B: Float32Array;
  /** BLoRA only: ρ of A [r, in] and of B [out, r] (absent for bayesian_a_only). */
  rhoA?: Float32Array;
  rhoB?: Float32Array;
}

export interface AdapterExport {
  method: 'lora' | 'blora';
  r: number;
  alpha: number;
  dropout: number;
  baseModel: string;
  modules: AdapterModule[];
  /** BLoRA only. */
  blora?: { priorSigma: number; estimator: 'flipout' | 'bbb' | 'lrt'; bayesianAOnly: boolean; beta: number };
}

export const PEFT_PREFIX = 'base_model.model.';

function escapeRe(s: string) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A regex PEFT fullmatches against module names, matching exactly the adapted modules: paths with the
 * same set of layers share one alternative, e.g. `model\.decoder\.layers\.(0|3)\.self_attn\.(q_proj|v_proj)`.
 */
export function targetModulesRegex(names: string[]): string {
  const layersByPath = new Map<string, Set<string>>(); // "<prefix>|<path>" → layer indices
  const plain: string[] = [];
  for (const n of names) {
    const m = /^(.*\.layers)\.(\d+)\.(.+)$/.exec(n);
    if (!m) {
      plain.push(escapeRe(n));
      continue;
    }
    const key = `${m[1]}|${m[3]}`;
    if (!layersByPath.has(key)) layersByPath.set(key, new Set());
    layersByPath.get(key)!.add(m[2]);
  }
  const groups = new Map<string, string[]>(); // "<prefix>|<layers>" → paths
  for (const [key, layers] of layersByPath) {
    const [prefix, path] = key.split('|');
    const g = `${prefix}|${[...layers].sort((x, y) => +x - +y).join(',')}`;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(path);
  }
  const alts = [...groups]
    .map(([g, paths]) => {
      const [prefix, layers] = g.split('|');
      const l = layers.split(',');
      const p = paths.sort().map(escapeRe);
      return `${escapeRe(prefix)}\\.${l.length === 1 ? l[0] : `(${l.join('|')})`}\\.${p.length === 1 ? p[0] : `(${p.join('|')})`}`;
    })
    .concat(plain);
  return alts.length === 1 ? alts[0] : `(${alts.join('|')})`;
}

export function exportAdapter(a: AdapterExport): Record<string, Uint8Array | string> {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  const posterior: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const m of a.modules) {
    if (m.A.length !== a.r * m.inFeatures) throw new Error(`${m.name}: A has ${m.A.length} values, expected r·in = ${a.r}·${m.inFeatures}`);
    if (m.B.length !== m.outFeatures * a.r)
      throw new Error(`${m.name}: B has ${m.B.length} values, expected out·r = ${m.outFeatures}·${a.r}`);
    tensors[`${PEFT_PREFIX}${m.name}.lora_A.weight`] = { shape: [a.r, m.inFeatures], data: m.A };
    tensors[`${PEFT_PREFIX}${m.name}.lora_B.weight`] = { shape: [m.outFeatures, a.r], data: m.B };
    if (a.method === 'blora') {
      if (!m.rhoA) throw new Error(`${m.name}: BLoRA export needs ρ_A`);
      posterior[`${PEFT_PREFIX}${m.name}.lora_A.rho`] = { shape: [a.r, m.inFeatures], data: m.rhoA };
      if (m.rhoB) posterior[`${PEFT_PREFIX}${m.name}.lora_B.rho`] = { shape: [m.outFeatures, a.r], data: m.rhoB };
    }
  }
  const config = {
    peft_type: 'LORA',
    task_type: null,
    base_model_name_or_path: a.baseModel,
    r: a.r,
    lora_alpha: a.alpha,
    lora_dropout: a.dropout,
    target_modules: targetModulesRegex(a.modules.map((m) => m.name)),
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    use_rslora: false,
    use_dora: false,
  };
  const out: Record<string, Uint8Array | string> = {
    'adapter_model.safetensors': writeSafetensors(tensors, { format: 'pt' }),
    'adapter_config.json': JSON.stringify(config, null, 2) + '\n',
  };
  if (a.method === 'blora') {
    const b = a.blora!;
    out['blora_posterior.safetensors'] = writeSafetensors(posterior, {
      format: 'pt',
      method: 'blora',
      sigma: 'softplus(rho); rho < -20: exp(rho)',
      prior_sigma: String(b.priorSigma),
      estimator: b.estimator,
      bayesian_a_only: String(b.bayesianAOnly),
      beta: String(b.beta),
    });
  }
  return out;
}

/** Re-import an exported adapter (the studio's own export, or any PEFT LoRA of this shape). */
export function importAdapter(files: Record<string, Uint8Array | string>): AdapterExport {
  const cfgRaw = files['adapter_config.json'];
  if (cfgRaw === undefined) throw new Error('adapter_config.json is missing');
  const cfg = JSON.parse(typeof cfgRaw === 'string' ? cfgRaw : new TextDecoder().decode(cfgRaw));
  if (cfg.peft_type !== 'LORA') throw new Error(`adapter_config.json: peft_type ${cfg.peft_type}, expected LORA`);
  const st = files['adapter_model.safetensors'];
  if (!(st instanceof Uint8Array)) throw new Error('adapter_model.safetensors is missing');
  const w = new SafetensorsFile(st, 'adapter_model.safetensors');
  const post = files['blora_posterior.safetensors'];
  const p = post instanceof Uint8Array ? new SafetensorsFile(post, 'blora_posterior.safetensors') : null;
  const modules: AdapterModule[] = [];
  for (const key of [...w.tensors.keys()].sort()) {
    const m = /^(?:base_model\.model\.)?(.+)\.lora_A(?:\.default)?\.weight$/.exec(key);
    if (!m) continue;
    const name = m[1];
    const bKey = key.replace('.lora_A', '.lora_B');
    const [r, inF] = w.info(key).shape;
    const [outF] = w.info(bKey).shape;
    const mod: AdapterModule = { name, inFeatures: inF, outFeatures: outF, A: w.float32(key), B: w.float32(bKey) };
    if (r !== cfg.r) throw new Error(`${key}: rank ${r} but adapter_config.json r = ${cfg.r}`);
    if (p) {
      mod.rhoA = p.float32(`${PEFT_PREFIX}${name}.lora_A.rho`);
      if (p.tensors.has(`${PEFT_PREFIX}${name}.lora_B.rho`)) mod.rhoB = p.float32(`${PEFT_PREFIX}${name}.lora_B.rho`);
    }
    modules.push(mod);
  }
  const meta = p?.metadata;
  return {
    method: p ? 'blora' : 'lora',
    r: cfg.r,
    alpha: cfg.lora_alpha,
    dropout: cfg.lora_dropout ?? 0,
    baseModel: cfg.base_model_name_or_path ?? '',
    modules,
    blora: meta
      ? {
          priorSigma: Number(meta.prior_sigma),
          estimator: meta.estimator as 'flipout',
          bayesianAOnly: meta.bayesian_a_only === 'true',
          beta: Number(meta.beta),
        }
      : undefined,
  };
}

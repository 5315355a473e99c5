/**
 * Support for test/engine/decoder-parity.test.ts: the real Whisper base decoder weights from the
 * prepared model folder, token batches from the demo clips (baseline oracle cache), and the case
 * folders read by tools/engine_oracle.py (JSON + raw little-endian f32 / i32 files).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GpuRuntime } from '../../src/gpu/runtime';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors';
import { uploadDecoderWeights, type DecoderWeights } from '../../src/engine/weights';
import { drawAdapterTheta, mulberry32, type AdapterPlan } from '../../src/engine/adapters';
import { materializeAdapterNoise } from '../../src/engine/reference/lora';
import { splitSeed } from '../../src/engine/kernels/kernel-util';
import type { OracleClip } from '../support/oracle';
import type { WhisperDecoderEngine } from '../../src/engine/decoder';

/** Eval CE, one training step (forward + backward + AdamW on micro-batch 1), eval CE again: the loss pair the f16 and buffer-limit tests compare. */
export async function lossAroundOneStep(eng: WhisperDecoderEngine, batch: TokenBatch): Promise<[LossRead, LossRead]> {
  eng.setBatch(batch);
  eng.forward(0, { eval: true });
  const l0 = await eng.readLoss();
  eng.forward(1);
  eng.backward(1);
  eng.optimizerStep(1);
  eng.forward(0, { eval: true });
  return [l0, await eng.readLoss()];
}
type LossRead = Awaited<ReturnType<WhisperDecoderEngine['readLoss']>>;

export const TOK = {
  SOT: 50258,
  EOT: 50257,
  TRANSCRIBE: 50359,
  NO_TIMESTAMPS: 50363,
  LANG: { en: 50259, es: 50262 } as Record<string, number>,
};

/**
 * Frozen decoder weights of the prepared model. storage: default BLORA_STORAGE, else f32 — the parity tests'
 * bounds are f32 ones, so a test adapter with shader-f16 (a real GPU) does not silently switch them to f16;
 * the f16 tests ask for 'f16' (f16-decoder.test.ts).
 */
export function loadDecoderWeights(
  rt: GpuRuntime,
  modelDir: string,
  storage: 'f16' | 'f32' | 'auto' = (process.env.BLORA_STORAGE as 'f16' | 'f32' | 'auto' | undefined) || 'f32',
): DecoderWeights {
  const cfg = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  const st = new SafetensorsFile(new Uint8Array(readFileSync(join(modelDir, 'model.safetensors'))), 'model.safetensors');
  return uploadDecoderWeights(rt, st, cfg.decoder_attention_heads, { storage });
}

export interface TokenBatch {
  B: number;
  S: number;
  inputIds: Int32Array; // (B·S), right-padded with EOT
  labels: Int32Array; // (B·S), −100 on padding
  lengths: number[];
  utterances: string[];
}

/**
 * Teacher-forcing batch: sequence = SOT, language, transcribe, notimestamps, text tokens, EOT;
 * decoder input = sequence[:-1], labels = sequence[1:] (HF shift), right-padded to the longest.
 */
export function tokenBatch(clips: OracleClip[]): TokenBatch {
  const seqs = clips.map((c) => {
    const lang = TOK.LANG[c.language ?? 'en'];
    if (lang === undefined) throw new Error(`no language token for ${c.language}`);
    return [TOK.SOT, lang, TOK.TRANSCRIBE, TOK.NO_TIMESTAMPS, ...c.tokens, TOK.EOT];
  });
  const B = seqs.length;
  const S = Math.max(...seqs.map((s) => s.length - 1));
  const inputIds = new Int32Array(B * S).fill(TOK.EOT);
  const labels = new Int32Array(B * S).fill(-100);
  const lengths: number[] = [];
  seqs.forEach((s, b) => {
    const n = s.length - 1;
    lengths.push(n);
    for (let i = 0; i < n; i++) {
      inputIds[b * S + i] = s[i];
      labels[b * S + i] = s[i + 1];
    }
  });
  return { B, S, inputIds, labels, lengths, utterances: clips.map((c) => c.id) };
}

const raw = (a: Float32Array | Int32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Appends f32 arrays to one file, remembering (offset, shape) for the JSON index. */
export class F32Pack {
  private parts: Float32Array[] = [];
  private n = 0;
  add(data: ArrayLike<number>, shape: number[]): { offset: number; shape: number[] } {
    const a = Float32Array.from(data);
    const offset = this.n;
    this.parts.push(a);
    this.n += a.length;
    return { offset, shape };
  }
  write(path: string): void {
    const out = new Float32Array(this.n);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    writeFileSync(path, raw(out));
  }
}

/**
 * The engine's noise for one step of every module, in tools/blora_torch.py's AdapterNoise layout
 * (from materializeAdapterNoise: the CPU twin of the GPU RNG, same Philox counters).
 */
export function stepNoise(plan: AdapterPlan, T: number, Tcross: number, step: number, pack: F32Pack) {
  const cfg = plan.config;
  const seed = splitSeed(cfg.seed);
  const out: Record<string, Record<string, { offset: number; shape: number[] }>> = {};
  for (const m of plan.modules) {
    const Tm = m.target === 'encoder_attn.k_proj' || m.target === 'encoder_attn.v_proj' ? Tcross : T;
    const nz = materializeAdapterNoise({
      T: Tm,
      nIn: m.nIn,
      r: cfg.r,
      nOut: m.nOut,
      alpha: cfg.alpha,
      modeA: m.modeA,
      modeB: m.modeB,
      seed,
      step,
      tensorA: 2 * m.id,
      tensorB: 2 * m.id + 1,
      dropout: cfg.dropout,
    });
    const e: Record<string, { offset: number; shape: number[] }> = {};
    const put = (key: string, a: Float64Array | null, shape: number[]) => {
      if (a) e[key] = pack.add(a, shape);
    };
    put('a.eps', nz.a.eps, [cfg.r, m.nIn]);
    put('a.sign_in', nz.a.signIn, [Tm, m.nIn]);
    put('a.sign_out', nz.a.signOut, [Tm, cfg.r]);
    put('a.xi', nz.a.xi, [Tm, cfg.r]);
    put('b.eps', nz.b.eps, [m.nOut, cfg.r]);
    put('b.sign_in', nz.b.signIn, [Tm, cfg.r]);
    put('b.sign_out', nz.b.signOut, [Tm, m.nOut]);
    put('b.xi', nz.b.xi, [Tm, m.nOut]);
    put('dropout_mask', nz.dropoutMask, [Tm, m.nIn]);
    out[m.name] = e;
  }
  return out;
}

export interface CaseFiles {
  dir: string;
  write(json: object, arrays: Record<string, Float32Array | Int32Array>): void;
}

export function caseDir(root: string, name: string): CaseFiles {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return {
    dir,
    write(json, arrays) {
      for (const [f, a] of Object.entries(arrays)) writeFileSync(join(dir, f), raw(a));
      writeFileSync(join(dir, 'case.json'), JSON.stringify(json, null, 1));
    },
  };
}

/** Dimensions of a synthetic Whisper for the fast checks (HF WhisperConfig names). */
export interface TinyWhisperDims {
  d_model: number;
  heads: number;
  ffn: number;
  layers: number;
  vocab: number;
  positions: number;
}

/**
 * A random Whisper in the prepared-model layout (config.json + model.safetensors, F32, decoder
 * tensors only — HF initializes the unused encoder at random), loadable by loadDecoderWeights and by
 * transformers' WhisperForConditionalGeneration.from_pretrained. Any width: shape-parity.test.ts
 * writes the real tiny … large-v3-turbo decoder shapes with it.
 *   embedScale: E ~ U(±embedScale) (default 0.5); the tied logits h·E_v have std ≈ embedScale·√(C/3)
 *   config: extra / overriding config.json keys (e.g. num_mel_bins 128 for large-v3)
 */
export function writeTinyWhisper(
  dir: string,
  d: TinyWhisperDims,
  seed: number,
  opts: { embedScale?: number; config?: Record<string, unknown> } = {},
): void {
  mkdirSync(dir, { recursive: true });
  const rnd = mulberry32(seed);
  const uni = (n: number, lo: number, hi: number) => {
    const a = new Float32Array(n); // a loop, not Float32Array.from: 66 M draws for large-v3's E
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rnd();
    return a;
  };
  const C = d.d_model;
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  const put = (name: string, shape: number[], lo: number, hi: number) => {
    t[name] = {
      shape,
      data: uni(
        shape.reduce((a, b) => a * b, 1),
        lo,
        hi,
      ),
    };
  };
  const linear = (name: string, nOut: number, nIn: number, bias = true) => {
    const b = 1 / Math.sqrt(nIn);
    put(`${name}.weight`, [nOut, nIn], -b, b);
    if (bias) put(`${name}.bias`, [nOut], -b, b);
  };
  const ln = (name: string) => {
    put(`${name}.weight`, [C], 0.8, 1.2);
    put(`${name}.bias`, [C], -0.1, 0.1);
  };
  const es = opts.embedScale ?? 0.5;
  put('model.decoder.embed_tokens.weight', [d.vocab, C], -es, es);
  put('model.decoder.embed_positions.weight', [d.positions, C], -0.3, 0.3);
  for (let l = 0; l < d.layers; l++) {
    const p = `model.decoder.layers.${l}`;
    for (const a of ['self_attn', 'encoder_attn']) {
      ln(`${p}.${a}_layer_norm`);
      linear(`${p}.${a}.q_proj`, C, C);
      linear(`${p}.${a}.k_proj`, C, C, false);
      linear(`${p}.${a}.v_proj`, C, C);
      linear(`${p}.${a}.out_proj`, C, C);
    }
    ln(`${p}.final_layer_norm`);
    linear(`${p}.fc1`, d.ffn, C);
    linear(`${p}.fc2`, C, d.ffn);
  }
  ln('model.decoder.layer_norm');
  writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(t, { format: 'pt' }));
  const config = {
    architectures: ['WhisperForConditionalGeneration'],
    model_type: 'whisper',
    d_model: C,
    decoder_layers: d.layers,
    decoder_attention_heads: d.heads,
    decoder_ffn_dim: d.ffn,
    encoder_layers: 1,
    encoder_attention_heads: d.heads,
    encoder_ffn_dim: d.ffn,
    num_hidden_layers: 1,
    vocab_size: d.vocab,
    max_target_positions: d.positions,
    max_source_positions: 8,
    num_mel_bins: 8,
    pad_token_id: 1,
    bos_token_id: 1,
    eos_token_id: 1,
    decoder_start_token_id: 2,
    activation_function: 'gelu',
    scale_embedding: false,
    dropout: 0,
    attention_dropout: 0,
    activation_dropout: 0,
    decoder_layerdrop: 0,
    encoder_layerdrop: 0,
    tie_word_embeddings: true,
    begin_suppress_tokens: null,
    suppress_tokens: null,
    use_cache: false,
    ...opts.config,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 1));
}

/**
 * Non-zero adapter test values in the plan's layout, drawn in module order (μ_A, ρ_A, μ_B, ρ_B):
 * μ_A ~ U(±1/√in), ρ_A ~ U(−5.5, −4.5), μ_B ~ U(±bScale), ρ_B ~ U(−5.5, −4.5) ('uniform') or a constant.
 * Unlike the spec init (initAdapterTheta: μ_B = 0), every gradient path is exercised.
 */
export function uniformTestTheta(plan: AdapterPlan, seed: number, o: { bScale: number; rhoB: 'uniform' | number }): Float32Array {
  return drawAdapterTheta(plan, seed, { muB: o.bScale, rhoB: o.rhoB });
}

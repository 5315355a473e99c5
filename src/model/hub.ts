// The Hugging Face Hub as the studio sees it: where it is (configurable, so a mirror or the tests'
// local Hub can stand in), an optional token, and which repo holds the PyTorch weights of an ONNX
// repo. onnx-community/* and Xenova/* repos carry only ONNX graphs; the WGSL engine trains from the
// decoder tensors by their Hugging Face names, which the original (weights) repo has in safetensors.

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';
const STORAGE_KEY = 'blora.hubEndpoint';

let endpointOverride: string | null = null;

const storage = (): Storage | null => {
  try {
    return typeof localStorage !== 'undefined' ? localStorage : null;
  } catch {
    return null; // e.g. storage blocked for the origin
  }
};
const nodeEnv = (k: string): string | undefined =>
  typeof process !== 'undefined' && process.env ? process.env[k] || undefined : undefined;

function normalizeEndpoint(url: string): string {
  const u = new URL(url); // throws on garbage: the caller learns at once, not at the first download
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`Hub endpoint ${url}: not an http(s) URL`);
  return u.href.replace(/\/+$/, '');
}

/**
 * The Hub's base URL, without a trailing slash. Precedence: setHubEndpoint() (browser: persisted in
 * localStorage "blora.hubEndpoint"), then HF_ENDPOINT (Node), then https://huggingface.co.
 * A Web Worker has no localStorage: the page passes its endpoint in the message (ModelLocation.endpoint).
 */
export function hubEndpoint(): string {
  if (endpointOverride) return endpointOverride;
  const stored = storage()?.getItem(STORAGE_KEY);
  if (stored) return stored;
  const env = nodeEnv('HF_ENDPOINT');
  return env ? normalizeEndpoint(env) : DEFAULT_HUB_ENDPOINT;
}

/** Set (or with null / '' reset to the default) the Hub endpoint; persisted where localStorage exists. */
export function setHubEndpoint(url: string | null): void {
  const s = storage();
  if (!url) {
    endpointOverride = null;
    s?.removeItem(STORAGE_KEY);
    return;
  }
  endpointOverride = normalizeEndpoint(url);
  s?.setItem(STORAGE_KEY, endpointOverride);
}

/** HF_TOKEN (Node) for gated / private repos; never logged. The browser passes a token explicitly. */
export function hubToken(): string | null {
  return nodeEnv('HF_TOKEN') ?? nodeEnv('HUGGING_FACE_HUB_TOKEN') ?? null;
}

export function isHubRepoId(s: string): boolean {
  return /^[\w.-]+\/[\w.-]+$/.test(s) && !s.includes('..');
}

/** https://huggingface.co/<repo>/resolve/<rev>/<path> */
export function hubFileUrl(repo: string, path: string, revision = 'main', endpoint = hubEndpoint()): string {
  return `${endpoint.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

/** A Hub resolve URL split into its parts (null for any other URL, e.g. the dev server's /models/…). */
export function parseHubUrl(url: string): { endpoint: string; repo: string; revision: string; path: string } | null {
  const m = /^(https?:\/\/[^/]+(?:\/.*?)?)\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m) return null;
  return { endpoint: m[1], repo: m[2], revision: decodeURIComponent(m[3]), path: m[4] ? decodeURIComponent(m[4]) : '' };
}

// ---------------------------------------------------------------------------------------------------
// The model table: one row per Whisper size, with the published architecture (the repos' config.json)
// and the ONNX repos whose weights the row's weights repo holds.

export type WeightsDtype = 'F32' | 'F16';

export interface WhisperModelInfo {
  /** e.g. "whisper-small.en" */
  name: string;
  /** repo with model.safetensors (Hugging Face names) */
  weightsRepo: string;
  /** ONNX (transformers.js) repos of the same weights */
  onnxRepos: readonly string[];
  dModel: number;
  decoderLayers: number;
  encoderLayers: number;
  /** decoder attention heads */
  heads: number;
  /** decoder_ffn_dim (4 · d_model for every Whisper) */
  ffn: number;
  vocab: number;
  melBins: number;
  maxTargetPositions: number;
  englishOnly: boolean;
  /** dtype of model.safetensors in weightsRepo */
  weightsDtype: WeightsDtype;
  /** bytes of the decoder tensors the engine fetches, in weightsDtype (computed from the shapes) */
  decoderBytes: number;
}

/**
 * Parameters of the tensors the engine reads (src/engine/weights.ts): embed_tokens V·C, embed_positions
 * NP·C, per layer 2 × attention (q, v, out with bias + k without: 4C² + 3C) + 3 layer norms (6C) +
 * fc1 (FC + F) + fc2 (CF + C), and the final layer norm (2C). proj_out is tied to embed_tokens.
 */
export function decoderParams(C: number, L: number, F: number, V: number, NP = 448): number {
  return V * C + NP * C + L * (8 * C * C + 13 * C + 2 * C * F + F) + 2 * C;
}

type Row = Omit<WhisperModelInfo, 'decoderBytes' | 'ffn' | 'maxTargetPositions' | 'onnxRepos'> & { onnxRepos?: string[] };

// dtypes: openai/whisper-{tiny,base,small,medium}[.en] publish f32 model.safetensors; large-v3 and
// large-v3-turbo publish f16 (3.09 GB / 1.62 GB for 1.55 B / 809 M parameters). The distil-whisper
// repos' model.safetensors are f16 too (distil-small.en 332 MB for 166 M parameters) — an assumption
// from the published file sizes; the loader reads the real dtype from the header either way.
const ROWS: Row[] = [
  ...(
    [
      ['tiny', 384, 4, 6],
      ['base', 512, 6, 8],
      ['small', 768, 12, 12],
      ['medium', 1024, 24, 16],
    ] as const
  ).flatMap(([size, dModel, layers, heads]) =>
    [false, true].map((en): Row => ({
      name: `whisper-${size}${en ? '.en' : ''}`,
      weightsRepo: `openai/whisper-${size}${en ? '.en' : ''}`,
      dModel,
      decoderLayers: layers,
      encoderLayers: layers,
      heads,
      vocab: en ? 51864 : 51865,
      melBins: 80,
      englishOnly: en,
      weightsDtype: 'F32',
    })),
  ),
  {
    name: 'whisper-large-v3',
    weightsRepo: 'openai/whisper-large-v3',
    dModel: 1280,
    decoderLayers: 32,
    encoderLayers: 32,
    heads: 20,
    vocab: 51866,
    melBins: 128,
    englishOnly: false,
    weightsDtype: 'F16',
  },
  {
    name: 'whisper-large-v3-turbo',
    weightsRepo: 'openai/whisper-large-v3-turbo',
    dModel: 1280,
    decoderLayers: 4,
    encoderLayers: 32,
    heads: 20,
    vocab: 51866,
    melBins: 128,
    englishOnly: false,
    weightsDtype: 'F16',
  },
  {
    name: 'distil-small.en',
    weightsRepo: 'distil-whisper/distil-small.en',
    dModel: 768,
    decoderLayers: 2,
    encoderLayers: 12,
    heads: 12,
    vocab: 51864,
    melBins: 80,
    englishOnly: true,
    weightsDtype: 'F16',
  },
  {
    name: 'distil-medium.en',
    weightsRepo: 'distil-whisper/distil-medium.en',
    dModel: 1024,
    decoderLayers: 2,
    encoderLayers: 24,
    heads: 16,
    vocab: 51864,
    melBins: 80,
    englishOnly: true,
    weightsDtype: 'F16',
  },
  {
    name: 'distil-large-v2',
    weightsRepo: 'distil-whisper/distil-large-v2',
    dModel: 1280,
    decoderLayers: 2,
    encoderLayers: 32,
    heads: 20,
    vocab: 51865,
    melBins: 80,
    englishOnly: false,
    weightsDtype: 'F16',
  },
  {
    name: 'distil-large-v3',
    weightsRepo: 'distil-whisper/distil-large-v3',
    dModel: 1280,
    decoderLayers: 2,
    encoderLayers: 32,
    heads: 20,
    vocab: 51866,
    melBins: 128,
    englishOnly: false,
    weightsDtype: 'F16',
  },
];

/**
 * ONNX repos of a row: onnx-community/<name> and Xenova/<name> (distil rows: onnx-community/<name> and the
 * distil-whisper repo itself, which carries an onnx/ folder next to model.safetensors). An id listed here
 * that is not on the Hub only never matches.
 */
function onnxReposOf(r: Row): string[] {
  if (r.name.startsWith('distil-')) return [`onnx-community/${r.name}`, r.weightsRepo];
  return [`onnx-community/${r.name}`, `Xenova/${r.name}`];
}

export const WHISPER_MODELS: readonly WhisperModelInfo[] = ROWS.map((r) => {
  const ffn = 4 * r.dModel;
  return Object.freeze({
    ...r,
    onnxRepos: Object.freeze(r.onnxRepos ?? onnxReposOf(r)),
    ffn,
    maxTargetPositions: 448,
    decoderBytes: decoderParams(r.dModel, r.decoderLayers, ffn, r.vocab) * (r.weightsDtype === 'F16' ? 2 : 4),
  });
});

/** The table row of a repo id (ONNX or weights repo; "@revision", "_timestamped" and "-ONNX" suffixes ignored). */
export function whisperModelFor(modelId: string): WhisperModelInfo | null {
  const id = modelId
    .replace(/@.*$/, '')
    .replace(/(_timestamped|-ONNX)$/i, '')
    .toLowerCase();
  return WHISPER_MODELS.find((m) => m.weightsRepo.toLowerCase() === id || m.onnxRepos.some((r) => r.toLowerCase() === id)) ?? null;
}

/** The repo with model.safetensors for a model id (e.g. onnx-community/whisper-small → openai/whisper-small), or null. */
export function weightsRepoFor(modelId: string): string | null {
  return whisperModelFor(modelId)?.weightsRepo ?? null;
}

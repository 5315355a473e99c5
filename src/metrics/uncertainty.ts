/**
 * Uncertainty from the posterior (issue 14 item 5): per-utterance scores, how well they flag the utterances
 * that are wrong (AUROC), and token-level calibration (ECE). Definitions, each next to its function:
 *
 *   disagreement(u) = mean over the K posterior-sample transcripts of WER(sample_k vs the mean-adapter transcript)
 *                     (Whisper-normalized words; 0 when every sample agrees with the mean)
 *   entropy(u)      = mean over the mean-adapter transcript's tokens of the entropy (nats) of the distribution
 *                     each was picked from
 *   AUROC           = P(score of an utterance with ≥ 1 word error > score of one without), ties ½
 *                     (Mann–Whitney); null when one class is empty
 *   ECE             = Σ_bins (n_b / N) · |accuracy_b − mean confidence_b|, 10 equal-width bins of confidence
 *                     = the probability of each generated text token; a token is correct when every
 *                     normalized word of the hypothesis word it belongs to aligns to an identical reference
 *                     word (editOps); tokens of words the normalizer removes (punctuation) are left out
 * LoRA has no posterior: its disagreement is not defined, its entropy is.
 */
import { editCounts, editOps } from './align';
import { normalizerFor, wordTokens } from './wer';

const words = (text: string, language: string): string[] => wordTokens(normalizerFor(language)(text));

/** Mean WER of each sample transcript against the mean transcript (normalized words). */
export function disagreement(mean: string, samples: readonly string[], language: string): number {
  if (!samples.length) throw new Error('disagreement: no posterior samples');
  const ref = words(mean, language);
  let sum = 0;
  for (const s of samples) {
    const hyp = words(s, language);
    const c = editCounts(ref, hyp);
    const errors = c.substitutions + c.deletions + c.insertions;
    // an empty mean transcript: every sample word is an insertion (rate 1 per sample with words)
    sum += ref.length ? errors / ref.length : hyp.length ? 1 : 0;
  }
  return sum / samples.length;
}

/** Mean of the per-token entropies (nats); 0 for an empty transcript. */
export function meanEntropy(tokenEntropy: readonly number[]): number {
  return tokenEntropy.length ? tokenEntropy.reduce((a, b) => a + b, 0) / tokenEntropy.length : 0;
}

/** AUROC of `scores` for `positives` (true = has an error): rank-sum with average ranks for ties. */
export function auroc(scores: readonly number[], positives: readonly boolean[]): number | null {
  if (scores.length !== positives.length) throw new Error('auroc: one label per score');
  const nPos = positives.filter(Boolean).length;
  const nNeg = positives.length - nPos;
  if (!nPos || !nNeg) return null;
  const order = scores.map((s, i) => [s, i] as const).sort((a, b) => a[0] - b[0]);
  const rank = new Float64Array(scores.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) rank[order[k][1]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  let sumPos = 0;
  positives.forEach((p, i) => p && (sumPos += rank[i]));
  return (sumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

export interface CalibrationBin {
  lo: number;
  hi: number;
  n: number;
  confidence: number;
  accuracy: number;
}

/** Expected calibration error over `bins` equal-width confidence bins (a confidence of 1 goes in the last). */
export function ece(
  confidence: readonly number[],
  correct: readonly boolean[],
  bins = 10,
): { ece: number | null; n: number; bins: CalibrationBin[] } {
  if (confidence.length !== correct.length) throw new Error('ece: one label per confidence');
  const acc = Array.from({ length: bins }, (_, b) => ({ lo: b / bins, hi: (b + 1) / bins, n: 0, c: 0, a: 0 }));
  confidence.forEach((p, i) => {
    if (!(p >= 0 && p <= 1)) throw new Error(`ece: confidence ${p} not in [0, 1]`);
    const b = acc[Math.min(bins - 1, Math.floor(p * bins))];
    b.n++;
    b.c += p;
    b.a += correct[i] ? 1 : 0;
  });
  const N = confidence.length;
  const out = acc.map((b) => ({ lo: b.lo, hi: b.hi, n: b.n, confidence: b.n ? b.c / b.n : 0, accuracy: b.n ? b.a / b.n : 0 }));
  return { ece: N ? out.reduce((s, b) => s + (b.n / N) * Math.abs(b.accuracy - b.confidence), 0) : null, n: N, bins: out };
}

/**
 * Correctness of each generated text token: `pieces` are the tokens' decoded texts (a piece starting with
 * whitespace starts a hypothesis word); the hypothesis words are normalized one by one and aligned, as a whole
 * transcript, to the normalized reference. null for a token whose word normalizes to nothing (left out of ECE).
 */
export function tokenCorrectness(pieces: readonly string[], reference: string, language: string): (boolean | null)[] {
  const norm = normalizerFor(language);
  const owner: number[] = []; // raw word of each piece
  const raw: string[] = [];
  for (const p of pieces) {
    if (!raw.length || /^\s/u.test(p)) raw.push('');
    raw[raw.length - 1] += p;
    owner.push(raw.length - 1);
  }
  const span: [number, number][] = []; // normalized-word range of each raw word
  const hyp: string[] = [];
  for (const w of raw) {
    const ws = wordTokens(norm(w));
    span.push([hyp.length, hyp.length + ws.length]);
    hyp.push(...ws);
  }
  const ref = wordTokens(norm(reference));
  const wrong = new Uint8Array(hyp.length);
  for (const op of editOps(ref, hyp)) if (op.tag !== 'delete') wrong[op.hypPos] = 1;
  return owner.map((o) => {
    const [a, b] = span[o];
    if (a === b) return null;
    for (let k = a; k < b; k++) if (wrong[k]) return false;
    return true;
  });
}

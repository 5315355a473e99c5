// The result in plain words (issue 17): one sentence per run for the end of the Run view, and the LoRA vs
// BLoRA sentence of the Compare view (and the demo) — built from the same summarize() numbers the tables show.
import { loraReference, summarize, type RunSummary } from './runMetrics';
import type { RunState } from './store';

const pc = (v: number) => `${Math.round(v * 100)}`;

/** "forgot 17 points" / "improved by 2 points" / "kept the base domain (±0 points)". */
function forgot(f: number): string {
  const p = Math.round(f * 100);
  return p > 0
    ? `forgot ${p} point${p === 1 ? '' : 's'}`
    : p < 0
      ? `improved by ${-p} point${p === -1 ? '' : 's'}`
      : 'kept the base domain (±0 points)';
}

/** The method and β of a run as the sentences name it: "LoRA", "BLoRA β 0.01". */
export function methodLabel(r: Pick<RunState, 'config'>): string {
  return r.config.method === 'blora' ? `BLoRA β ${Number(r.config.adapter.beta.toPrecision(2))}` : 'LoRA';
}

/** "base-domain WER 33 → 50 % (forgot 17 points); new-domain WER 98 → 51 %" — null before an evaluation after training. */
export function domainSentence(s: RunSummary): string | null {
  const parts: string[] = [];
  if (s.werBase !== undefined && s.werBase0 !== undefined && s.step > 0)
    parts.push(`base-domain WER ${pc(s.werBase0)} → ${pc(s.werBase)} % (${forgot(s.werBase - s.werBase0)})`);
  if (s.werNew !== undefined && s.werNew0 !== undefined && s.step > 0) parts.push(`new-domain WER ${pc(s.werNew0)} → ${pc(s.werNew)} %`);
  return parts.length ? parts.join('; ') : null;
}

/** The Run view's last line: "LoRA: base-domain WER 33 → 50 % (forgot 17 points); new-domain WER 98 → 51 %". */
export function runSentence(r: RunState): string | null {
  const d = domainSentence(summarize(r));
  return d ? `${methodLabel(r)}: ${d}.` : null;
}

/**
 * The Compare view's sentence: LoRA's result, each BLoRA run's on the same data, and what it means — BLoRA
 * forgetting less than LoRA (and whether it learned the new domain as well: within 2 WER points of LoRA), or
 * why there is nothing to compare yet. Null without a finished LoRA run and a BLoRA run on its data.
 */
export function compareSentence(runs: RunState[]): string | null {
  const done = (r: RunState) => summarize(r).step > 0;
  const blora = runs.filter((r) => r.config.method === 'blora' && done(r));
  const withRef = blora.map((b) => ({ b, lora: loraReference(runs, b) })).filter((x) => x.lora);
  if (!withRef.length) return null;
  const lora = withRef.at(-1)!.lora!;
  const bs = withRef.filter((x) => x.lora === lora).map((x) => x.b);
  const sl = summarize(lora);
  const out = [runSentence(lora)!, ...bs.map((b) => runSentence(b)!)];
  const fl = sl.forgetting ?? 0;
  if (Math.round(fl * 100) <= 0) {
    out.push(
      'LoRA did not forget here, so BLoRA has nothing to save: train longer, with a higher learning rate or on fewer clips (as the demo does) to see the difference.',
    );
    return out.join(' ');
  }
  // the BLoRA run that forgot least
  const best = bs.map((b) => ({ b, s: summarize(b) })).sort((x, y) => (x.s.forgetting ?? 0) - (y.s.forgetting ?? 0))[0];
  const fb = best.s.forgetting ?? 0;
  const less = Math.round((fl - fb) * 100);
  if (less <= 0)
    out.push(`${methodLabel(best.b)} forgot as much as LoRA or more here (${Math.round(fb * 100)} vs ${Math.round(fl * 100)} points).`);
  else {
    const wn = best.s.werNew,
      wl = sl.werNew;
    // "learned" = new-domain WER down by at least a point from the frozen model's (one word in a few clips is more)
    const improved = (x: RunSummary) => x.werNew !== undefined && x.werNew0 !== undefined && x.werNew <= x.werNew0 - 0.01;
    let tail: string;
    if (wn === undefined || wl === undefined) tail = '.';
    else if (wn > wl + 0.02) tail = `, but learned the new domain less (${pc(wn)} vs ${pc(wl)} %).`;
    else if (improved(best.s)) tail = ', and it learned the new domain as well.';
    else if (!improved(sl))
      tail = `; neither learned the new domain here (new-domain WER ${pc(sl.werNew0 ?? wl)} % frozen, ${pc(wl)} % LoRA, ${pc(wn)} % ${methodLabel(best.b)}): few training clips show the forgetting, not the learning.`;
    else tail = `, with a new-domain WER within 2 points of LoRA's (${pc(wn)} vs ${pc(wl)} %).`;
    out.push(`${methodLabel(best.b)} forgot ${less} point${less === 1 ? '' : 's'} less than LoRA${tail}`);
  }
  return out.join(' ');
}

// Several training datasets in the studio: the first dataset of role train — with every other train dataset that
// has no mixing share — forms data.train; a train dataset with a share p is its own set in data.trainMix, drawn
// with probability p per utterance (MixSampler, src/train/data.ts), data.train with the rest. Pure, so that the
// rules are tested without a browser (test/ui/mix.test.ts).

export interface TrainPart {
  name: string;
  /** utterances ready to train on */
  n: number;
  /** mixing probability in (0, 1); absent: concatenated with the first training dataset */
  mix?: number;
}

export interface TrainMixPlan {
  /** indices into the parts, in the order their utterances are concatenated into RunData.train */
  order: number[];
  /** experiment.json data.train: the names of the concatenated datasets */
  train: string;
  /** experiment.json data.trainMix (absent: nothing mixed) */
  trainMix?: { path: string; p: number }[];
  /** Trainer's data.trainSets: sizes and probabilities, data.train first (absent: nothing mixed) */
  trainSets?: { n: number; p: number }[];
}

/** The mixing plan of the train datasets (in the Data panel's order), or why it cannot run. */
export function trainMixPlan(parts: TrainPart[]): TrainMixPlan | string {
  if (!parts.length) return 'add a training dataset (role: train)';
  const mixed = parts.map((p, i) => ({ ...p, i })).filter((p, i) => i > 0 && p.mix !== undefined);
  const main = parts.map((p, i) => ({ ...p, i })).filter((p, i) => i === 0 || p.mix === undefined);
  for (const p of mixed) {
    if (!(p.mix! > 0 && p.mix! < 1)) return `${p.name}: the mixing share must be between 0 and 100 % (got ${+(p.mix! * 100).toFixed(2)} %)`;
    if (!p.n) return `${p.name}: no encoded utterances to mix in`;
  }
  const rest = 1 - mixed.reduce((a, p) => a + p.mix!, 0);
  if (mixed.length && !(rest > 1e-9))
    return `the mixing shares add up to ${+((1 - rest) * 100).toFixed(2)} %: ${parts[0].name} needs the rest (> 0 %)`;
  const plan: TrainMixPlan = { order: [...main, ...mixed].map((p) => p.i), train: main.map((p) => p.name).join(',') };
  if (mixed.length) {
    plan.trainMix = mixed.map((p) => ({ path: p.name, p: p.mix! }));
    plan.trainSets = [{ n: main.reduce((a, p) => a + p.n, 0), p: rest }, ...mixed.map((p) => ({ n: p.n, p: p.mix! }))];
  }
  return plan;
}

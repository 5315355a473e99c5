// blora-studio headless CLI (Node): the studio's engine without the browser.
//   blora-studio eval --model DIR --data DIR [--data DIR ...] [--language xx] [--limit N] [--out FILE]
//   blora-studio train [--config experiment.json] [flags]   (src/cli/train.ts)
//   blora-studio export --run DIR --format hf|transformersjs|ct2|peft --out DIR   (src/cli/export.ts)
//   blora-studio plan [--model DIR|ID|random:SIZE] [flags] [--json]   (src/cli/plan.ts)
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { homedir } from 'node:os';
import { AudioDecodeError, loadAudio16k, WHISPER_WINDOW_SECONDS } from '../audio';
import { englishOnlyLanguage, languageToken } from '../decoder/generate';
import { DatasetError } from '../data/manifest';
import { computeMixedErrorRate, computeWer, primaryMetricFor } from '../metrics/wer';
import { CachedHubSource, NodeFsByteCache } from '../model/decoder-weights';
import { hubEndpoint, isHubRepoId } from '../model/hub';
import { FsModelSource, ModelFileError } from '../model/source';
import { loadWhisperAssets, type WhisperAssets } from '../model/whisperModel';
import { Transcriber } from '../pipeline/transcriber';
import { ProgressBar } from './progress';
import { checkOutPath, openDataset, reportDataset, TRAIN_FLAGS, TRAIN_HELP, trainCommand, TrainUsageError } from './train';
import { EXPORT_FLAGS, EXPORT_HELP, exportCommand, ExportUsageError } from './export';
import { PLAN_FLAGS, PLAN_HELP, planCommand, PlanUsageError } from './plan';

const DEFAULT_MODEL = join(process.env.BLORA_CACHE ?? join(homedir(), '.cache/blora-studio'), 'models/whisper-base');

const HELP = `blora-studio — adapt a frozen Whisper with (Bayesian) LoRA; headless CLI

Usage:
  blora-studio eval --data DIR [--data DIR ...] [options]
      Transcribe every utterance of each dataset with the frozen model (greedy decoding) and report
      WER (and the mixed CJK/Latin error rate for zh/ja/yue) per dataset and language.
${TRAIN_HELP}${EXPORT_HELP}${PLAN_HELP}
  blora-studio --help

Options (eval):
  --model DIR|ID    model folder in the transformers.js ONNX layout (default: ${DEFAULT_MODEL}), or a Hub repo id
                    (e.g. onnx-community/whisper-base; HF_ENDPOINT, HF_TOKEN; files cached under $BLORA_CACHE/hub)
  --data DIR|FILE   dataset folder (or one manifest file in it): audiofolder metadata.csv, *.jsonl manifest, Common Voice .tsv + clips/,
                    or Kaldi wav.scp + text (repeatable)
  --language CODE   force the language (default: the row's "language", else detection)
  --limit N         only the first N utterances of each dataset
  --max-new-tokens N  cap on generated tokens per utterance (default 128)
  --out FILE        write one JSON line per utterance (id, reference, hypothesis, wer) to FILE
`;

export class UsageError extends Error {}

export function parseArgs(argv: string[]): { command: string; opts: Record<string, string[]> } {
  const [command = '--help', ...rest] = argv;
  const opts: Record<string, string[]> = {};
  const known: Record<string, readonly string[]> = {
    eval: ['model', 'data', 'language', 'limit', 'max-new-tokens', 'out'],
    train: TRAIN_FLAGS,
    export: EXPORT_FLAGS,
    plan: PLAN_FLAGS,
  };
  if (command === '--help' || command === '-h' || command === 'help') return { command: 'help', opts };
  if (!known[command]) throw new UsageError(`unknown command "${command}" (try --help)`);
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === '--help' || a === '-h') return { command: 'help', opts };
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m || !known[command].includes(m[1])) throw new UsageError(`unknown option "${a}" for ${command} (try --help)`);
    // plan --json is a switch (no value); every other option takes one
    const v =
      m[2] ?? (command === 'plan' && m[1] === 'json' && (rest[i + 1] === undefined || rest[i + 1].startsWith('--')) ? 'true' : rest[++i]);
    if (v === undefined || v.startsWith('--')) throw new UsageError(`option --${m[1]} needs a value`);
    (opts[m[1]] ??= []).push(v);
  }
  return { command, opts };
}

function intOpt(opts: Record<string, string[]>, k: string, dflt: number): number {
  const v = opts[k]?.[0];
  if (v === undefined) return dflt;
  // Decimal digits only: Number() would take "0x10", "1e3", "12 " and "".
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--${k} must be a positive integer, got "${v}"`);
  return n;
}

/** Why a row's language cannot be transcribed by this model, or null. */
function languageProblem(assets: WhisperAssets, language: string | null): string | null {
  if (language === null) return null;
  try {
    if (assets.generation.is_multilingual) languageToken(assets, language);
    else englishOnlyLanguage(language);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

async function evalCommand(opts: Record<string, string[]>): Promise<void> {
  const given = opts.model?.[0] ?? DEFAULT_MODEL;
  const hub = !existsSync(given) && isHubRepoId(given);
  const model = hub ? given : resolve(given);
  if (!hub && !existsSync(model))
    throw new UsageError(`--model ${model}: no such folder (run "npm run setup" for the default model, or give a Hub repo id)`);
  const dataDirs = opts.data ?? [];
  if (!dataDirs.length) throw new UsageError('eval needs at least one --data DIR');
  const limit = intOpt(opts, 'limit', Infinity as unknown as number);
  const maxNewTokens = intOpt(opts, 'max-new-tokens', 128);
  const outFile = opts.out?.at(-1) ? resolve(opts.out.at(-1)!) : null;
  // Every argument is checked before the model loads: a bad --out or --data used to fail after the work.
  if (outFile) checkOutPath(outFile, '--out', 'file', UsageError);
  const sets = [];
  for (const d of dataDirs) {
    sets.push({ dir: d, ...(await openDataset(d, '--data', UsageError)) });
  }
  const forced = opts.language?.at(-1) ?? null;
  const source = hub ? new CachedHubSource(model, { cache: new NodeFsByteCache() }) : new FsModelSource(model);
  const assets = await loadWhisperAssets(source).catch((e) => {
    throw e instanceof ModelFileError ? new UsageError(`--model ${model}: ${e.message}`) : e;
  });
  const forcedProblem = languageProblem(assets, forced);
  if (forcedProblem) throw new UsageError(`--language ${forced}: ${forcedProblem}`);
  const out: string[] = [];
  let skippedTotal = 0;
  const log = (s: string) => process.stderr.write(`${s}\n`);

  log(`loading ${model}${hub ? ` from ${hubEndpoint()}` : ''} (onnxruntime-web, wasm)`);
  const tr = await Transcriber.load(source, { backend: 'wasm' });
  for (const { dir, root, ds, files } of sets) {
    reportDataset(root, ds, log);
    const rows = ds.rows.slice(0, Number.isFinite(limit) ? limit : undefined);
    const bar = new ProgressBar(rows.length, `eval ${dir}`);
    const byLang = new Map<string, { refs: string[]; hyps: string[] }>();
    const skipped: { id: string; audio: string; message: string }[] = [];
    for (const [i, r] of rows.entries()) {
      const audioPath = join(root, r.audio);
      const language = forced ?? r.language ?? null;
      // One bad clip is skipped and counted, as in training: it must not abort the evaluation.
      const skip = (message: string) => {
        skipped.push({ id: r.id, audio: audioPath, message });
        log(`warning: ${join(root, ds.manifest)}: row "${r.id}" (${audioPath}) skipped: ${message}`);
      };
      const lp = languageProblem(assets, language);
      if (lp) skip(lp);
      else {
        let samples: Float32Array | null = null;
        try {
          samples = await loadAudio16k(await files.readBytes(r.audio), audioPath);
        } catch (e) {
          if (!(e instanceof AudioDecodeError || e instanceof DatasetError)) throw e;
          skip(`audio: ${e.message}`);
        }
        if (samples) {
          // Evaluated (Whisper hears the first 30 s), but said: the reference may cover audio the model never hears.
          if (samples.length > WHISPER_WINDOW_SECONDS * 16000) {
            log(
              `warning: ${audioPath}: ${(samples.length / 16000).toFixed(1)} s of audio, longer than Whisper's ${WHISPER_WINDOW_SECONDS}-s window: only the first ${WHISPER_WINDOW_SECONDS} s are transcribed`,
            );
          }
          const res = await tr.transcribe(samples, { language, maxNewTokens });
          const lang = language ?? res.language ?? 'en';
          const g = byLang.get(lang) ?? { refs: [], hyps: [] };
          g.refs.push(r.text);
          g.hyps.push(res.text);
          byLang.set(lang, g);
          out.push(
            JSON.stringify({
              dataset: dir,
              id: r.id,
              language: lang,
              reference: r.text,
              hypothesis: res.text,
              wer: computeWer([r.text], [res.text], { language: lang }).value,
              truncated: res.truncated,
            }),
          );
        }
      }
      bar.update(i + 1);
    }
    for (const s of skipped) out.push(JSON.stringify({ dataset: dir, id: s.id, audio: s.audio, skipped: s.message }));
    skippedTotal += skipped.length;
    const notes = [
      ds.errors.length ? `${ds.errors.length} rows skipped by the reader` : '',
      skipped.length ? `${skipped.length} clips skipped` : '',
    ].filter(Boolean);
    console.log(
      `\n${dir} (${ds.format}, ${rows.length - skipped.length} of ${rows.length} utterances evaluated${notes.length ? `, ${notes.join(', ')}` : ''})`,
    );
    for (const [lang, g] of byLang) {
      const wer = computeWer(g.refs, g.hyps, { language: lang });
      const extra =
        primaryMetricFor(lang) === 'mer'
          ? `  mixed error rate ${(computeMixedErrorRate(g.refs, g.hyps, { language: lang }).value * 100).toFixed(1)} %`
          : '';
      console.log(
        `  ${lang}: WER ${(wer.value * 100).toFixed(1)} % over ${g.refs.length} utterances (S ${wer.substitutions}, D ${wer.deletions}, I ${wer.insertions} of ${wer.refTokens} words)${extra}`,
      );
    }
  }
  if (skippedTotal)
    console.log(`\n${skippedTotal} clip(s) skipped (see the warnings above${outFile ? ` and the "skipped" lines of ${outFile}` : ''})`);
  if (outFile) writeFileSync(outFile, out.join('\n') + '\n');
  await tr.encoder.release();
}

export async function main(argv: string[]): Promise<number> {
  try {
    const { command, opts } = parseArgs(argv);
    if (command === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    if (command === 'eval') await evalCommand(opts);
    if (command === 'train') await trainCommand(opts, DEFAULT_MODEL);
    if (command === 'export') await exportCommand(opts);
    if (command === 'plan') await planCommand(opts, DEFAULT_MODEL);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof TrainUsageError || e instanceof ExportUsageError || e instanceof PlanUsageError) {
      process.stderr.write(`blora-studio: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`blora-studio: ${(e as Error).message}\n`);
    return 1;
  }
}

if (process.argv[1] && /cli[\\/]main\.ts$|blora-studio(\.mjs)?$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}

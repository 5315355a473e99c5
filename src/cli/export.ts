// `blora-studio export --run DIR --format hf|transformersjs|ct2|peft --out DIR`: a trained run (the folder
// `blora-studio train --out` writes: adapter/ + experiment.json naming the model) as a model other
// runtimes load. hf / transformersjs: src/export/merged.ts; ct2: the hf export converted by
// tools/export_ct2.py (PyPI ctranslate2); peft: the adapter as trained (optionally pruned).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportTransformers, exportTransformersJs, type ExportFiles, type MergedReport } from '../export/merged';
import { exportAdapter, importAdapter, type AdapterExport } from '../export/peft';
import { pruneAdapterBySnr } from '../export/prune';
import { FsModelSource } from '../model/source';

export class ExportUsageError extends Error {}

export const EXPORT_FLAGS = ['run', 'format', 'out', 'model', 'prune-snr', 'python'] as const;
export const EXPORT_FORMATS = ['hf', 'transformersjs', 'ct2', 'peft'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export const EXPORT_HELP = `
  blora-studio export --run DIR --format hf|transformersjs|ct2|peft --out DIR [--prune-snr X] [--model DIR]
      A trained run as a model for other runtimes: the adapter merged into the decoder (W + s·B·A; BLoRA:
      posterior means), in float64, rounded once. hf: model.safetensors in the source's dtype + config and
      tokenizer files (transformers from_pretrained); transformersjs: the model's ONNX layout with the merged
      f32 weights in the decoder graphs (transformers.js pipeline, the studio); ct2: CTranslate2 model.bin in
      the source's dtype (faster-whisper; needs the venv's ctranslate2); peft: the unmerged adapter.

Options (export):
  --run DIR          a run folder of "blora-studio train --out": adapter/ (PEFT files) and experiment.json
  --format F         hf | transformersjs | ct2 | peft
  --out DIR          output folder (created; files in it are overwritten)
  --model DIR        the base model folder (default: "model" of the run's experiment.json)
  --prune-snr X      BLoRA: zero every posterior mean with |μ|/σ < X before merging (default 0: none)
  --python PATH      Python with ctranslate2 for --format ct2 (default $BLORA_PYTHON, else the setup venv)
`;

type Opts = Record<string, string[]>;

function readRun(run: string): { adapter: AdapterExport; model: string | null } {
  const dir = join(run, 'adapter');
  if (!existsSync(join(dir, 'adapter_config.json')))
    throw new ExportUsageError(`--run ${run}: no adapter/adapter_config.json (a folder of "blora-studio train --out")`);
  const files: Record<string, Uint8Array> = {};
  for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'blora_posterior.safetensors']) {
    if (existsSync(join(dir, f))) files[f] = new Uint8Array(readFileSync(join(dir, f)));
  }
  let adapter: AdapterExport;
  try {
    adapter = importAdapter(files);
  } catch (e) {
    throw new Error(`${dir}: ${(e as Error).message}`);
  }
  let model: string | null = null;
  const exp = join(run, 'experiment.json');
  if (existsSync(exp)) {
    try {
      model = JSON.parse(readFileSync(exp, 'utf8')).model ?? null;
    } catch (e) {
      throw new ExportUsageError(`${exp}: not JSON (${(e as Error).message})`);
    }
  }
  return { adapter, model };
}

function onnxFilesOf(model: string): string[] {
  const d = join(model, 'onnx');
  return existsSync(d)
    ? readdirSync(d)
        .filter((f) => f.endsWith('.onnx'))
        .sort()
        .map((f) => `onnx/${f}`)
    : [];
}

function writeFiles(out: string, files: ExportFiles | Record<string, Uint8Array | string>): void {
  for (const [f, data] of Object.entries(files)) {
    mkdirSync(dirname(join(out, f)), { recursive: true });
    writeFileSync(join(out, f), data);
  }
}

export function defaultPython(): string {
  return process.env.BLORA_PYTHON ?? join(process.env.BLORA_CACHE ?? join(homedir(), '.cache/blora-studio'), 'venv/bin/python');
}

const TOOLS = resolve(dirname(fileURLToPath(import.meta.url)), '../../tools');

/** Every file under `dir` with its size (for the report). */
export function folderSizes(dir: string, prefix = ''): { file: string; bytes: number }[] {
  const out: { file: string; bytes: number }[] = [];
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...folderSizes(p, `${prefix}${f}/`));
    else out.push({ file: `${prefix}${f}`, bytes: statSync(p).size });
  }
  return out;
}

export interface ExportResult {
  out: string;
  format: ExportFormat;
  files: { file: string; bytes: number }[];
  bytes: number;
  report?: MergedReport;
  pruned?: number;
}

/** The export itself (the CLI command and the tests call it). */
export async function runExport(o: {
  run: string;
  format: ExportFormat;
  out: string;
  model?: string;
  pruneSnr?: number;
  python?: string;
  log?: (s: string) => void;
}): Promise<ExportResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  if (!EXPORT_FORMATS.includes(o.format)) throw new ExportUsageError(`--format ${o.format}: expected one of ${EXPORT_FORMATS.join(', ')}`);
  const run = readRun(o.run);
  const model = o.model ?? run.model;
  if (!model) throw new ExportUsageError(`--run ${o.run}: experiment.json names no model; give --model DIR`);
  if (!existsSync(join(model, 'config.json')))
    throw new ExportUsageError(
      `model ${model}: no config.json (a model folder is needed for a merged export; Hub ids: download the folder first)`,
    );
  let adapter = run.adapter;
  let pruned: number | undefined;
  if (o.pruneSnr) {
    if (adapter.method !== 'blora')
      throw new ExportUsageError(
        `--prune-snr: the run's adapter is ${adapter.method}, SNR pruning needs a BLoRA posterior (blora_posterior.safetensors)`,
      );
    const p = pruneAdapterBySnr(adapter, o.pruneSnr);
    adapter = p.adapter;
    pruned = p.pruned;
    log(`SNR pruning at ${o.pruneSnr}: ${(p.pruned * 100).toFixed(2)} % of ${p.elements} adapter means set to 0`);
  }
  mkdirSync(o.out, { recursive: true });
  const source = new FsModelSource(model);
  let report: MergedReport | undefined;
  if (o.format === 'peft') {
    writeFiles(o.out, exportAdapter(adapter));
  } else if (o.format === 'hf') {
    const r = await exportTransformers(source, adapter);
    writeFiles(o.out, r.files);
    report = r.report;
  } else if (o.format === 'transformersjs') {
    const r = await exportTransformersJs(source, adapter, onnxFilesOf(model));
    writeFiles(o.out, r.files);
    report = r.report;
  } else {
    const tmp = mkdtempSync(join(tmpdir(), 'blora-ct2-'));
    try {
      const r = await exportTransformers(source, adapter);
      writeFiles(tmp, r.files);
      report = r.report;
      const py = o.python ?? defaultPython();
      if (!existsSync(py))
        throw new Error(`--format ct2: no Python at ${py} (run "npm run setup", or give --python with ctranslate2 installed)`);
      execFileSync(py, [join(TOOLS, 'export_ct2.py'), '--hf', tmp, '--out', o.out], {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
      });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  for (const s of report?.skipped ?? []) log(`left out ${s.file}: ${s.reason}`);
  const files = folderSizes(o.out);
  return { out: o.out, format: o.format, files, bytes: files.reduce((a, f) => a + f.bytes, 0), report, pruned };
}

export async function exportCommand(opts: Opts): Promise<void> {
  const one = (k: string) => opts[k]?.[0];
  const run = one('run');
  const format = one('format') as ExportFormat | undefined;
  const out = one('out');
  if (!run) throw new ExportUsageError('export needs --run DIR (a folder of "blora-studio train --out")');
  if (!format) throw new ExportUsageError(`export needs --format ${EXPORT_FORMATS.join('|')}`);
  if (!out) throw new ExportUsageError('export needs --out DIR');
  if (!existsSync(run)) throw new ExportUsageError(`--run ${run}: no such folder`);
  let pruneSnr: number | undefined;
  if (one('prune-snr') !== undefined) {
    pruneSnr = Number(one('prune-snr'));
    if (!(pruneSnr >= 0)) throw new ExportUsageError(`--prune-snr must be a number ≥ 0, got "${one('prune-snr')}"`);
  }
  const t0 = performance.now();
  const r = await runExport({
    run: resolve(run),
    format,
    out: resolve(out),
    model: one('model') && resolve(one('model')!),
    pruneSnr,
    python: one('python'),
  });
  for (const f of r.files) console.log(`  ${f.file}  ${f.bytes.toLocaleString('en-US')} bytes`);
  console.log(
    `${format} export of ${run}: ${r.files.length} files, ${r.bytes.toLocaleString('en-US')} bytes in ${r.out} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  if (r.report?.modules.length)
    console.log(
      `  merged ${r.report.modules.length} modules (${r.report.modules[0].dtype}), e.g. ${r.report.modules[0].name} → ${r.report.modules[0].targets.join(', ')}`,
    );
}

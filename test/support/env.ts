// Where the tests find the prepared model, the Python venv and their output folder. scripts/setup.sh
// prepares them (scripts/lib.sh sets the same defaults); a missing piece fails with the fix, never skips.
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CACHE = process.env.BLORA_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'blora-studio');
export const MODEL_DIR = process.env.BLORA_MODEL_DIR ?? join(CACHE, 'models/whisper-base');
/** The second real model: English-only Whisper tiny.en (tests of the English-only path). */
export const TINY_EN_DIR = process.env.BLORA_TINY_EN_DIR ?? join(CACHE, 'models/whisper-tiny.en');
export const PYTHON = process.env.BLORA_PYTHON ?? join(CACHE, 'venv/bin/python');
export const DEMO_DIR = join(REPO, 'public/demo');
export const RESULTS = join(REPO, 'test-results');

export function requireModel(): string {
  if (!existsSync(join(MODEL_DIR, 'blora-model.json'))) {
    throw new Error(`No prepared model at ${MODEL_DIR}. Run "npm run setup" (scripts/setup.sh) first.`);
  }
  return MODEL_DIR;
}

export function requireTinyEn(): string {
  if (!existsSync(join(TINY_EN_DIR, 'blora-model.json'))) {
    throw new Error(`No prepared Whisper tiny.en at ${TINY_EN_DIR}. Run "npm run setup" (scripts/setup.sh, step 5) first.`);
  }
  return TINY_EN_DIR;
}

export function requirePython(): string {
  if (!existsSync(PYTHON)) throw new Error(`No Python venv at ${PYTHON}. Run "npm run setup" (scripts/setup.sh) first.`);
  return PYTHON;
}

export function resultsDir(sub = ''): string {
  const d = join(RESULTS, sub);
  mkdirSync(d, { recursive: true });
  return d;
}

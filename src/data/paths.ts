// Paths written in a manifest, turned into paths inside the dataset. Pure string work (the browser has no
// file system): what a path may not do is decided here, before anything is looked up or read.
import { excerpt } from './text';

/** The reason recorded for an ordinary folder (every folder is listed, so one named like a file is reported as a folder). */
export const FOLDER = 'a folder, not a file';

/** Absolute (POSIX, UNC, Windows drive), home-relative, or a URL: nothing a dataset folder can hold. */
const ABSOLUTE = /^(\/|\\|[A-Za-z]:[\\/]|~[\\/]?|[A-Za-z][A-Za-z0-9+.-]*:\/\/|file:)/;

/**
 * `raw` (as written in the manifest) relative to `base` (the manifest's folder, '' or ending in '/'),
 * normalised ("./", "a/../b"), or why it is refused. `..` is allowed while it stays inside the dataset.
 */
export function resolveInDataset(base: string, raw: string): { path: string } | { error: string } {
  const p = raw.trim();
  if (!p) return { error: 'empty audio path' };
  if (/[\u0000-\u001f\u007f]/.test(p)) return { error: `${excerpt(p)}: control characters in the audio path` };
  if (ABSOLUTE.test(p)) {
    return {
      error: `${excerpt(p)}: absolute paths are refused (only files inside the dataset folder are read); write it relative to the manifest's folder`,
    };
  }
  const parts = base.split('/').filter(Boolean);
  const depth0 = 0;
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (parts.length === depth0) return { error: `${excerpt(p)}: the path leads out of the dataset folder (../); refused` };
      parts.pop();
    } else parts.push(seg);
  }
  if (!parts.length) return { error: `${excerpt(p)}: not a file path` };
  return { path: parts.join('/') };
}

/** Is `p` already a normalised path inside the dataset (no "..", ".", empty or absolute parts)? */
export function isDatasetPath(p: string): boolean {
  if (!p || ABSOLUTE.test(p) || /[\u0000]/.test(p)) return false;
  return p.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

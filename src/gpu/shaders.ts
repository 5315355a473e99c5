/**
 * WGSL source text, loaded the same way in the browser (Vite) and in Node (tsx).
 *
 * Mechanism — one function, two paths, no build step:
 *  - Browser / Vite (dev server and `vite build`): the literal
 *    `import.meta.glob('../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true })`
 *    below is rewritten by Vite at transform time into static `?raw` imports, so every
 *    `shaders/*.wgsl` file is inlined into the bundle as a string.
 *  - Node under tsx: `import.meta.glob` does not exist, the call throws a TypeError that we catch,
 *    and `wgsl(name)` reads `shaders/<name>.wgsl` synchronously with `fs`, relative to this file's
 *    URL. `fs` is obtained via `process.getBuiltinModule` (Node ≥ 20.16), so no `node:` import is
 *    visible to Vite's import analysis and the browser bundle stays free of Node modules.
 *
 * The glob is relative to this file (not to Vite's root), so it keeps working whatever `root` a
 * vite config picks, as long as `server.fs.allow` covers the repo (Vite's default: the workspace).
 *
 * Usage: `wgsl('matmul_bias')` → contents of `shaders/matmul_bias.wgsl`, its `// @microtile16` directives
 * expanded (src/gpu/microtile.ts).
 */

import { expandMicroTiles } from './microtile';

function viteShaders(): Record<string, string> | undefined {
  try {
    return import.meta.glob<string>('../../shaders/*.wgsl', {
      query: '?raw',
      import: 'default',
      eager: true,
    });
  } catch {
    return undefined; // not transformed by Vite (Node/tsx): import.meta.glob is undefined
  }
}

const bundled = viteShaders();
const cache = new Map<string, string>();

function readFromDisk(name: string): string {
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  const fs = proc?.getBuiltinModule?.('node:fs') as typeof import('node:fs') | undefined;
  if (!fs) {
    throw new Error(
      `wgsl('${name}'): no Vite import.meta.glob and no Node fs — ` + 'load this module through Vite (browser) or tsx on Node ≥ 20.16',
    );
  }
  // `here` in a variable: Vite rewrites `new URL(<literal>, import.meta.url)` into emitted assets.
  const here = import.meta.url;
  const url = new URL(`../../shaders/${name}.wgsl`, here);
  try {
    return fs.readFileSync(url, 'utf8');
  } catch (e) {
    throw new Error(`wgsl('${name}'): cannot read ${url.pathname}: ${(e as Error).message}`);
  }
}

/** The WGSL source of `shaders/<name>.wgsl` (name without extension). */
export function wgsl(name: string): string {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  let src: string | undefined;
  if (bundled) {
    src = bundled[`../../shaders/${name}.wgsl`];
    if (src === undefined) {
      const known = Object.keys(bundled).map((k) => k.replace(/^.*\/|\.wgsl$/g, ''));
      throw new Error(`wgsl('${name}'): no shaders/${name}.wgsl in bundle (have: ${known.join(', ')})`);
    }
  } else {
    src = readFromDisk(name);
  }
  src = expandMicroTiles(src, `shaders/${name}.wgsl`); // the _rt entry points' unrolled 16×16 micro-tiles
  cache.set(name, src);
  return src;
}

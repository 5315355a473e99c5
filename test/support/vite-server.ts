/**
 * Programmatic Vite dev server for browser tests, independent of any vite.config.* in the repo
 * (configFile: false, every option explicit). Listens on 127.0.0.1 on an ephemeral port.
 *
 *   const srv = await startViteServer();
 *   await page.goto(`${srv.url}/test/browser/gpu.html`);
 *   await srv.close();
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, type InlineConfig, type PluginOption } from 'vite';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface StartViteOptions {
  /** Default: the repo root, so any file is reachable as /path/from/repo. */
  root?: string;
  plugins?: PluginOption[];
  /** Merged last (escape hatch). */
  overrides?: InlineConfig;
}

export interface TestServer {
  /** e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startViteServer(opts: StartViteOptions = {}): Promise<TestServer> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'blora-vite-'));
  const server = await createServer({
    configFile: false,
    envDir: false,
    root: opts.root ?? REPO_ROOT,
    cacheDir,
    logLevel: 'warn',
    clearScreen: false,
    appType: 'mpa',
    plugins: opts.plugins ?? [],
    server: {
      host: '127.0.0.1',
      port: 0,
      strictPort: true,
      hmr: false,
      watch: null,
      fs: { strict: true, allow: [REPO_ROOT] },
    },
    // The GPU test pages import no npm packages; don't crawl the repo for deps to pre-bundle.
    optimizeDeps: { noDiscovery: true, include: [] },
    ...opts.overrides,
  });
  await server.listen();
  const addr = server.httpServer?.address();
  if (!addr || typeof addr === 'string') {
    await server.close();
    throw new Error(`vite: unexpected server address ${String(addr)}`);
  }
  const url = `http://127.0.0.1:${addr.port}`;
  return {
    url,
    port: addr.port,
    async close() {
      await server.close();
      rmSync(cacheDir, { recursive: true, force: true });
    },
  };
}

// The studio itself, served by Vite with the project's vite.config.ts (React, COOP/COEP headers) on an
// ephemeral 127.0.0.1 port — what `npm start` serves, for the end-to-end tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'vite';
import { REPO } from './env';

export async function startStudioServer(): Promise<{ url: string; close(): Promise<void> }> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'blora-studio-vite-'));
  const server = await createServer({
    configFile: join(REPO, 'vite.config.ts'),
    root: REPO,
    cacheDir,
    logLevel: 'warn',
    clearScreen: false,
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
  });
  await server.listen();
  const addr = server.httpServer?.address();
  if (!addr || typeof addr === 'string') throw new Error('vite did not report a port');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    async close() {
      await server.close();
      rmSync(cacheDir, { recursive: true, force: true });
    },
  };
}

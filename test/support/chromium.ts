/**
 * Headless Chromium with WebGPU on a machine without a GPU (facts: /work/shared/webgpu-on-cpu.md).
 * Shared by the WGSL browser tests and the studio's E2E tests.
 *
 *   const { browser, context, close } = await launchChromium();
 *   const page = await context.newPage();
 *   ...
 *   await close();
 *
 * - Default WebGPU adapter: SwiftShader (isFallbackAdapter: true), full core features.
 * - `webgpu: 'gl-compat'` adds `--use-angle=gl-egl --use-webgpu-adapter=opengles`; the page must
 *   then call requestAdapter({ featureLevel: 'compatibility' }) (≈8× faster, no f16/subgroups,
 *   128 MiB bindings).
 * - Never add `--use-angle=vulkan --disable-vulkan-surface`: requestAdapter() hangs forever.
 * - Profile: Playwright's `launch()` always passes a fresh temporary `--user-data-dir`
 *   (playwright_chromiumdev_profile-*) and deletes it on close; `browser` and `context` are both
 *   returned. (`--user-data-dir` in `extraArgs` is rejected by Playwright — use its
 *   launchPersistentContext directly if a persistent profile is ever needed.)
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type LaunchOptions, type Page } from 'playwright-core';
import { bloraCacheRoot } from '../../src/runtime/cache-dir';

export const CHROMIUM_PATH = process.env.BLORA_CHROMIUM ?? '/usr/bin/chromium';

/** Exactly the flags measured to give WebGPU in headless Chromium here. */
export const CHROMIUM_WEBGPU_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--enable-unsafe-webgpu',
];

export const CHROMIUM_GL_COMPAT_ARGS: readonly string[] = ['--use-angle=gl-egl', '--use-webgpu-adapter=opengles'];

export interface LaunchChromiumOptions {
  /** WebGPU adapter: 'swiftshader' (default) or 'gl-compat' (Mesa llvmpipe through ANGLE GL/EGL). */
  webgpu?: 'swiftshader' | 'gl-compat';
  /** Appended after the standard flags. */
  extraArgs?: string[];
  /** Default true. */
  headless?: boolean;
  executablePath?: string;
  /** Passed to browser.newContext() (viewport, permissions, …). */
  contextOptions?: Parameters<Browser['newContext']>[0];
  /** Extra environment for the browser process (merged over process.env). */
  env?: Record<string, string>;
  /** Other Playwright launch options (timeout, slowMo, …). */
  launchOptions?: Omit<LaunchOptions, 'args' | 'headless' | 'executablePath' | 'env'>;
}

export interface LaunchedChromium {
  browser: Browser;
  context: BrowserContext;
  /** Closes the context and the browser (and so deletes the temporary profile). Idempotent. */
  close(): Promise<void>;
}

export async function launchChromium(opts: LaunchChromiumOptions = {}): Promise<LaunchedChromium> {
  const executablePath = opts.executablePath ?? CHROMIUM_PATH;
  if (!existsSync(executablePath)) {
    throw new Error(
      `Chromium not found at ${executablePath}: install Debian package 'chromium' ` +
        '(it also brings the SwiftShader Vulkan ICD), or set BLORA_CHROMIUM.',
    );
  }
  const args = [...CHROMIUM_WEBGPU_ARGS, ...(opts.webgpu === 'gl-compat' ? CHROMIUM_GL_COMPAT_ARGS : []), ...(opts.extraArgs ?? [])];
  const browser = await chromium.launch({
    ...opts.launchOptions,
    executablePath,
    headless: opts.headless ?? true,
    args,
    env: {
      ...(process.env as Record<string, string>),
      // Mesa (GL-compat path) would otherwise write its shader cache under $HOME/.cache: keep it with ours.
      MESA_SHADER_CACHE_DIR: process.env.MESA_SHADER_CACHE_DIR ?? `${bloraCacheRoot()}/mesa-shader-cache`,
      ...opts.env,
    },
  });
  let context: BrowserContext;
  try {
    context = await browser.newContext(opts.contextOptions);
  } catch (e) {
    await browser.close();
    throw e;
  }
  let closed = false;
  return {
    browser,
    context,
    async close() {
      if (closed) return;
      closed = true;
      await context.close().catch(() => {});
      await browser.close();
    },
  };
}

/**
 * Forward a page's console errors, uncaught exceptions and crashes to `sink` (default: console.error),
 * prefixed with `tag`. Returns the collected lines.
 */
export function forwardPageErrors(page: Page, tag = 'page', sink: (line: string) => void = console.error): string[] {
  const lines: string[] = [];
  const emit = (line: string): void => {
    lines.push(line);
    sink(line);
  };
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') emit(`[${tag} console.${msg.type()}] ${msg.text()}`);
  });
  page.on('pageerror', (err) => emit(`[${tag} pageerror] ${err.stack ?? err.message}`));
  page.on('crash', () => emit(`[${tag}] page crashed`));
  page.on('requestfailed', (req) => emit(`[${tag} requestfailed] ${req.url()} ${req.failure()?.errorText ?? ''}`));
  return lines;
}

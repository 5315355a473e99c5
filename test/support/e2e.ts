// Shared by the studio E2E files: wait for a condition on the page, saying every 30 s what the studio
// shows it is doing, so a slow or stuck run is readable from the test log.
import type { Page } from 'playwright-core';

export async function waitFor(page: Page, what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  let told = t0;
  for (;;) {
    if (await fn()) return;
    if (Date.now() - told > 30_000) {
      // What the studio says it is doing, so a slow or stuck run is readable from the test log.
      told = Date.now();
      const progress = await page
        .evaluate(
          () =>
            (
              document.querySelector('[data-testid=run-progress]') ??
              document.querySelector('[data-testid=run-view]') ??
              document.querySelector('[data-testid=setup-error]')
            )?.textContent ??
            // no run view: which tab shows what (a stuck restore after a reload is readable from this)
            `no run view; tab ${document.querySelector('nav.tabs button.active')?.textContent ?? '?'}: ${document.querySelector('main')?.textContent?.replace(/\s+/g, ' ').slice(0, 240) ?? 'no <main>'}`,
        )
        .catch((e) => `page busy (${(e as Error).message})`);
      console.log(`  … ${what} (${((told - t0) / 1000).toFixed(0)} s): ${progress?.slice(0, 300) ?? 'no run view'}`);
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await page.waitForTimeout(500);
  }
}

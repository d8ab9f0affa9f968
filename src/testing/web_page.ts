/**
 * Shared set-up of the browser tests: a Vite build of the page in a temp folder (so test files that
 * run in parallel never share `web/dist`), Debian's headless Chromium through playwright-core, and
 * helpers that wait for the page while failing fast with the page's own error text.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { buildPage } from '../../web/serve.js';
import type { PageBuildOptions } from '../../web/vite.config.js';

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = fs.existsSync(CHROMIUM);
export const chromiumSkip = haveChromium ? false : `needs ${CHROMIUM} (apt-get install -y chromium)`;
export const ARTIFACTS = path.resolve('test-artifacts');
/** Chromium flags of every browser test: no sandbox (containers), no GPU, no network chatter. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
];

const builds: string[] = [];

/** Builds the page into a new temp folder and returns it ({@link removeBuilds} deletes it). */
export async function buildPageTo(opts: Omit<PageBuildOptions, 'outDir'> = {}): Promise<string> {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-web-build-'));
  builds.push(outDir);
  await buildPage({ ...opts, outDir });
  return outDir;
}

/** Deletes the temp folders {@link buildPageTo} made. */
export function removeBuilds(): void {
  for (const dir of builds.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** Starts headless Chromium (no GPU: WebGL would be software-rendered; the tests use wasm). */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** Collects uncaught page errors and failed (≥ 400) responses of `page`, for asserting none happened. */
export function watchPage(page: Page): { errors: string[]; badResponses: string[] } {
  const seen = { errors: [] as string[], badResponses: [] as string[] };
  page.on('pageerror', (e) => seen.errors.push(e.message));
  page.on('response', (r) => {
    if (r.status() >= 400) seen.badResponses.push(`${r.status()} ${r.url()}`);
  });
  return seen;
}

/** Waits until `done` (a JS expression) holds in the page or `#error` shows; fails with the page's error. */
export async function waitOrPageError(
  page: Page,
  what: string,
  done: string,
  timeout = 60_000,
): Promise<void> {
  await page.waitForFunction(`(${done}) || !document.querySelector('#error').hidden`, null, { timeout });
  if (await page.locator('#error').isVisible()) {
    assert.fail(`${what}: the page shows an error: ${await page.textContent('#error')}`);
  }
}

/** The losses the chart drew (its `data-losses`), in step order. */
export async function chartLosses(page: Page): Promise<number[]> {
  const pts = JSON.parse((await page.getAttribute('#loss-chart', 'data-losses')) ?? '[]') as [
    number,
    number | null,
  ][];
  return pts.map(([, l]) => l ?? NaN);
}

export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

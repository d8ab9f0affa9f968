// The page works wherever it is served (issue 12, item 4): as static files under a sub-path, as on
// GitHub Pages (`/lowrank/`), and cross-origin isolated (COOP/COEP headers), where tfjs runs its
// threaded wasm. A build with tfjs's threads left broken must still come up, single-threaded, and say so.
//   npm test -- tests/web_served   (about a minute on 2 shared cores)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { Browser, Page } from 'playwright-core';
import { servePage } from '../web/serve.js';
import {
  buildPageTo,
  chartLosses,
  chromiumSkip,
  haveChromium,
  launchChromium,
  removeBuilds,
  waitOrPageError,
  watchPage,
} from '../src/testing/web_page.js';
import { maxDiff } from '../src/testing/compare.js';

/** The sub-path the page is served under, like a GitHub Pages project site. */
const BASE = '/lowrank/';
/** Steps of the comparison run: enough for the adapter to move the loss, quick on 2 cores. */
const STEPS = 6;
/**
 * Threaded vs single-threaded wasm, same seed: XNNPACK may split a matmul over threads, which only
 * changes the float32 summation order (~1e-6 relative on these sizes).
 */
const THREADS_LOSS_ATOL = 1e-4;

let browser: Browser | undefined;
const servers: Server[] = [];

before(async () => {
  if (haveChromium) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  for (const s of servers) s.close();
  removeBuilds();
});

async function serve(dir: string, crossOriginIsolated: boolean): Promise<string> {
  const { server, url } = await servePage(0, { dir, base: BASE, crossOriginIsolated });
  servers.push(server);
  return url;
}

/** Opens the page on wasm and waits until it is ready (never longer than the page's own init timeout). */
async function open(url: string): Promise<{ page: Page; seen: ReturnType<typeof watchPage> }> {
  const page = await browser!.newPage();
  const seen = watchPage(page);
  await page.goto(`${url}?backend=wasm`);
  await page.waitForFunction(
    () => document.body.dataset.ready === 'true' || !document.querySelector('#error')!.hasAttribute('hidden'),
    null,
    { timeout: 120_000 },
  );
  assert.equal(
    await page.locator('#error').isVisible(),
    false,
    `the page starts: ${await page.textContent('#error')}`,
  );
  assert.equal(await page.textContent('#backend'), 'wasm');
  return { page, seen };
}

/** A short LoRA run on the demo Llama; returns the losses the chart drew. */
async function shortRun(page: Page, steps: number): Promise<number[]> {
  await page.click('#load-model');
  await waitOrPageError(
    page,
    'load demo',
    `document.querySelector('#model-info').textContent.includes('llama')`,
  );
  await page.selectOption('#method', 'lora');
  await page.fill('#steps', String(steps));
  await page.click('#train');
  await waitOrPageError(
    page,
    'train',
    `document.querySelector('#train-state').dataset.state === 'done'`,
    120_000,
  );
  const losses = await chartLosses(page);
  assert.equal(losses.length, steps);
  return losses;
}

test(
  'under a sub-path, plain and cross-origin isolated: threaded wasm starts and trains like single-threaded wasm',
  { skip: chromiumSkip, timeout: 240_000 },
  async (t) => {
    const dir = await buildPageTo();
    const plainUrl = await serve(dir, false);
    const isolatedUrl = await serve(dir, true);

    // Everything the page loads is found under the sub-path: the server answers 404 outside it.
    const outside = await fetch(new URL('/index.html', plainUrl));
    assert.equal(outside.status, 404, 'the test server really serves only under the sub-path');

    const plain = await open(plainUrl);
    assert.equal(await plain.page.evaluate(() => crossOriginIsolated), false);
    assert.match(
      (await plain.page.textContent('#backend-note')) ?? '',
      /^single-threaded \(serve the page with COOP\/COEP/,
    );
    const plainLosses = await shortRun(plain.page, STEPS);
    assert.deepEqual(plain.seen.badResponses, []);
    assert.deepEqual(plain.seen.errors, []);

    const iso = await open(isolatedUrl);
    assert.equal(await iso.page.evaluate(() => crossOriginIsolated), true);
    const note = (await iso.page.textContent('#backend-note')) ?? '';
    t.diagnostic(`isolated page: wasm ${note}`);
    assert.match(note, /^threaded · \d+ threads?$/, 'the threaded wasm binary runs');
    const isoLosses = await shortRun(iso.page, STEPS);
    assert.deepEqual(iso.seen.badResponses, []);
    assert.deepEqual(iso.seen.errors, [], 'no thread worker failed');

    const diff = maxDiff(isoLosses, plainLosses);
    assert.ok(
      diff <= THREADS_LOSS_ATOL,
      `threaded and single-threaded wasm give the same losses (max |diff| ${diff.toExponential(2)})`,
    );
    assert.ok(
      plainLosses[STEPS - 1]! < plainLosses[0]!,
      `the loss falls: ${plainLosses.map((l) => l.toFixed(3))}`,
    );
    await plain.page.close();
    await iso.page.close();
  },
);

test(
  "with tfjs's thread code left broken by the minifier, the isolated page falls back to single-threaded wasm and says so",
  { skip: chromiumSkip, timeout: 240_000 },
  async () => {
    const dir = await buildPageTo({ fixWasmThreads: false });
    const { page } = await open(await serve(dir, true));
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    assert.match(
      (await page.textContent('#backend-note')) ?? '',
      /^single-threaded: starting with wasm threads failed \(.+\)$/,
    );
    // The fallback worker is a working one: a short run trains.
    const losses = await shortRun(page, 3);
    assert.ok(losses.every(Number.isFinite));
    await page.close();
  },
);

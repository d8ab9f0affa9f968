// The page's demo shows the point (issue 12, item 5), in Chromium on wasm at 420 px wide: the default
// Llama run ends far below the uniform baseline and then writes sample-grammar sentences (it did not
// before); the default BERT run classifies a held-out review by its adjective, with named labels;
// nothing stale survives a rejected run or a new model; errors show next to the action that failed.
//   npm test -- tests/web_demo   (about a minute on 2 shared cores)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Server } from 'node:http';
import type { Browser, Page } from 'playwright-core';
import { servePage } from '../web/serve.js';
import type { ProbeResult } from '../web/protocol.js';
import { DEMO_RUNS } from '../web/demo_runs.js';
import { isSampleSentence } from '../web/samples.js';
import {
  ARTIFACTS,
  buildPageTo,
  chartLosses,
  chromiumSkip,
  haveChromium,
  launchChromium,
  removeBuilds,
  mean,
  waitOrPageError,
  watchPage,
} from '../src/testing/web_page.js';

/** The narrow window the page must fit (a phone, a side-by-side window). */
const WIDTH = 420;
/**
 * "Clearly below" the uniform baseline ln(vocab): by at least this many nats (mean of the last 5
 * steps). Measured: 2.2 vs ln(117) = 4.76 after the default 60 steps.
 */
const LM_MARGIN_NATS = 1.5;
/** The BERT run's last-5 mean loss must be under this (ln 2 = 0.69 is chance); measured ~0.06. */
const CLS_MAX_LOSS = 0.3;
/**
 * Guard on a default run's training time. Measured 8–20 s at load 9–13 on the 2 shared cores (under
 * a minute is the goal on an ordinary machine); the bound catches a run many times slower, not load.
 */
const MAX_TRAIN_SECONDS = 120;

let browser: Browser | undefined;
let server: Server | undefined;
let page: Page;
let seen: ReturnType<typeof watchPage>;

before(async () => {
  if (!haveChromium) return;
  const [dir, b] = await Promise.all([buildPageTo(), launchChromium()]);
  browser = b;
  const served = await servePage(0, { dir });
  server = served.server;
  page = await browser.newPage({ viewport: { width: WIDTH, height: 1000 } });
  seen = watchPage(page);
  await page.goto(`${served.url}?backend=wasm`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
});
after(async () => {
  await browser?.close();
  server?.close();
  removeBuilds();
});

async function probe(prompt?: string): Promise<ProbeResult> {
  if (prompt !== undefined) await page.fill('#prompt', prompt);
  await page.evaluate(() => delete document.querySelector<HTMLElement>('#probe-logits')!.dataset.result);
  await page.click('#run');
  await waitOrPageError(page, 'probe', `!!document.querySelector('#probe-logits').dataset.result`);
  return JSON.parse((await page.getAttribute('#probe-logits', 'data-result'))!) as ProbeResult;
}

async function loadDemo(arch: 'llama' | 'bert'): Promise<void> {
  await page.check('input[name="model-kind"][value="demo"]');
  await page.selectOption('#demo-arch', arch);
  await page.click('#load-model');
  await waitOrPageError(
    page,
    `load demo ${arch}`,
    `document.querySelector('#model-name').textContent === 'demo-${arch}'`,
  );
}

/** Clicks Train with the form as it is and waits for the run; returns the training time in seconds. */
async function trainDefault(): Promise<number> {
  const t0 = Date.now();
  await page.click('#train');
  await waitOrPageError(
    page,
    'train',
    `document.querySelector('#train-state').dataset.state === 'done'`,
    180_000,
  );
  return (Date.now() - t0) / 1000;
}

/** Nothing in the page is wider than the window, and the charts stay inside their card. */
async function assertFits(what: string): Promise<void> {
  // A string, not a function: tsx's name helpers do not exist in the page.
  const r = (await page.evaluate(`(() => {
    const card = document.querySelector('#train-panel').getBoundingClientRect();
    const right = (sel) => document.querySelector(sel)?.getBoundingClientRect().right ?? 0;
    return {
      scrollWidth: document.documentElement.scrollWidth,
      wide: [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
        .map((e) => e.tagName.toLowerCase() + '#' + e.id),
      cardRight: card.right,
      chartRight: right('#loss-chart svg'),
      heatmapRight: right('#heatmap svg'),
    };
  })()`)) as {
    scrollWidth: number;
    wide: string[];
    cardRight: number;
    chartRight: number;
    heatmapRight: number;
  };
  assert.ok(
    r.scrollWidth <= WIDTH,
    `${what}: page ${r.scrollWidth} px wide at ${WIDTH} px (${r.wide.join(', ')})`,
  );
  assert.ok(r.chartRight <= r.cardRight, `${what}: the loss chart overflows its card`);
  assert.ok(r.heatmapRight <= r.cardRight, `${what}: the heatmap overflows its card`);
}

test(
  'default Llama run on wasm: loss far below ln(vocab), grammar sentences after training and not before',
  { skip: chromiumSkip, timeout: 240_000 },
  async (t) => {
    const t0 = Date.now();
    await loadDemo('llama');
    const vocab = Number(/vocab (\d+)/.exec((await page.textContent('#model-info')) ?? '')?.[1]);
    assert.ok(vocab > 2);
    assert.equal(
      await page.inputValue('#steps'),
      String(DEMO_RUNS.llama.steps),
      'the form holds the default run',
    );
    const before = await probe();
    const seconds = await trainDefault();
    const losses = await chartLosses(page);
    assert.equal(losses.length, DEMO_RUNS.llama.steps);
    const last = mean(losses.slice(-5));
    assert.ok(
      last < Math.log(vocab) - LM_MARGIN_NATS,
      `final loss ${last.toFixed(3)} is clearly below ln(${vocab}) = ${Math.log(vocab).toFixed(3)}`,
    );
    assert.ok(seconds < MAX_TRAIN_SECONDS, `the default run took ${seconds} s`);
    // The chart draws the baseline the loss has to beat.
    const baseline = Number(await page.getAttribute('#loss-chart', 'data-baseline'));
    assert.ok(Math.abs(baseline - Math.log(vocab)) < 1e-9, `chart baseline ${baseline}`);
    assert.equal(await page.locator('#loss-chart line.baseline').count(), 1);
    const after = await probe();
    const grammatical = (text: string) => text.split('.').filter((s) => isSampleSentence(s)).length;
    t.diagnostic(`before: ${JSON.stringify(before.text)}; after: ${JSON.stringify(after.text)}`);
    t.diagnostic(
      `train ${seconds.toFixed(1)} s, load+train+generate ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    assert.equal(grammatical(before.text), 0, 'the base model writes no sample sentence');
    assert.ok(grammatical(after.text) >= 2, `the trained adapter writes sample sentences: ${after.text}`);
    await assertFits('after the Llama run');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, `web-${WIDTH}px-llama.png`), fullPage: true });
    assert.deepEqual(seen.errors, []);
  },
);

test(
  'default BERT run on wasm: named labels, held-out reviews classified by their adjective',
  { skip: chromiumSkip, timeout: 240_000 },
  async () => {
    await loadDemo('bert');
    assert.equal(await page.inputValue('#task'), 'SEQ_CLS');
    assert.equal(await page.inputValue('#prompt'), DEMO_RUNS.bert.prompt);
    const seconds = await trainDefault();
    const losses = await chartLosses(page);
    assert.ok(mean(losses.slice(-5)) < CLS_MAX_LOSS, `final loss ${mean(losses.slice(-5))}`);
    assert.ok(seconds < MAX_TRAIN_SECONDS, `the default run took ${seconds} s`);
    // The default prompt is a held-out pair ("lovely song" is in no training row).
    const r = await probe();
    assert.deepEqual(r.labels, ['negative', 'positive']);
    assert.match(r.text, /^positive \(\d+\.\d%\)$/);
    assert.match((await page.textContent('#probe-logits')) ?? '', /negative 0\.\d+, positive 0\.\d+/);
    // Same noun, other adjective: the label follows the adjective (every noun is in both classes).
    assert.match((await probe('the song was boring')).text, /^negative/);
    assert.match((await probe('what a dull trip')).text, /^negative/, 'the other held-out pair');
    await assertFits('after the BERT run');
    await page.screenshot({ path: path.join(ARTIFACTS, `web-${WIDTH}px-bert.png`), fullPage: true });
    assert.deepEqual(seen.errors, []);
  },
);

test(
  'no stale state: a rejected run clears chart, progress, heatmap and output; a new model clears the generation; errors sit by their action',
  { skip: chromiumSkip, timeout: 120_000 },
  async () => {
    await loadDemo('bert');
    await trainDefault();
    await probe();
    assert.ok(((await page.textContent('#progress-text')) ?? '').length > 0);
    assert.ok(await page.getAttribute('#heatmap', 'data-ranks'));

    // A run the worker rejects (empty data): the error is next to Train, and the old run is gone.
    await page.fill('#data-text', '');
    await page.click('#train');
    await page.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    assert.match((await page.textContent('#error')) ?? '', /DataError.*is empty/s);
    const place = await page.evaluate(() => {
      const err = document.querySelector('#error')!;
      const train = document.querySelector('#train')!;
      return {
        afterTrainRow: err.previousElementSibling?.contains(train) ?? false,
        gap: err.getBoundingClientRect().top - train.getBoundingClientRect().bottom,
      };
    });
    assert.ok(
      place.afterTrainRow && place.gap >= 0 && place.gap < 40,
      `error by the Train button: ${JSON.stringify(place)}`,
    );
    assert.deepEqual(await chartLosses(page), []);
    assert.equal(await page.textContent('#progress-text'), '');
    assert.equal(await page.getAttribute('#heatmap', 'data-ranks'), null);
    assert.equal(await page.textContent('#output'), '');
    assert.equal(
      await page.getAttribute('#train-state', 'data-state'),
      'failed',
      'not the earlier run\'s "done"',
    );

    // An error of another action moves next to that action.
    await page.selectOption('#stored-models', '');
    await page.click('#load-stored');
    await page.waitForFunction(
      () => document.querySelector<HTMLElement>('#error')!.dataset.near === 'load-stored',
    );
    assert.equal(
      await page.evaluate(() =>
        document
          .querySelector('#error')!
          .previousElementSibling!.contains(document.querySelector('#load-stored')),
      ),
      true,
    );
    await page.click('#error-close');

    // A generation, then another model: the old model's output goes with it.
    await page.fill('#prompt', 'what a great film');
    await probe();
    assert.notEqual(await page.textContent('#output'), '');
    await loadDemo('llama');
    assert.equal(await page.textContent('#output'), '');
    assert.equal(await page.getAttribute('#probe-logits', 'data-result'), null);
    assert.equal(await page.textContent('#progress-text'), '');
    assert.deepEqual(await chartLosses(page), []);
    assert.equal(await page.inputValue('#adapters'), '');
    assert.deepEqual(seen.errors, []);
  },
);

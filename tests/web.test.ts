// End-to-end test of the browser page (issue 8): Vite build, served on localhost, driven in Debian's
// headless Chromium by playwright-core. Skips, saying why, when /usr/bin/chromium is absent.
//   npm test -- tests/web.test   (about a minute on 2 shared cores)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Server } from 'node:http';
import type { BrowserContext, Page } from 'playwright-core';
import { buildPage, servePage } from '../web/serve.js';
import type { ProbeResult, RankSnapshot } from '../web/protocol.js';
import { buildDemo, demoConfig, demoTokenizerConfig, demoTokenizerJson } from '../web/demo.js';
import { saveModel } from '../src/models/load.js';
import { modelFromConfig } from '../src/models/from_config.js';
import { getPeftModel, LoraConfig, PeftModel } from '../src/tuners/index.js';
import '../src/tuners/adalora/index.js'; // registers the ADALORA tuner for fromPretrained
import { tf } from '../src/tensor/tf.js';
import { maxDiff } from '../src/testing/compare.js';
import {
  ARTIFACTS,
  CHROMIUM,
  CHROMIUM_ARGS,
  haveChromium,
  waitOrPageError,
} from '../src/testing/web_page.js';

/** Waits until `done` holds in the test's page or `#error` shows (src/testing/web_page.ts). */
const waitOn = (what: string, done: string, timeout?: number) => waitOrPageError(page, what, done, timeout);

if (!haveChromium) console.log(`# web e2e skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);

/** Steps of the AdaLoRA run: enough masking steps for ranks to differ, short enough for CI. */
const TRAIN_STEPS = 30;
/** The loss shown must fall by at least this fraction (mean of the last 5 steps vs the first 5). */
// the task loss, AdaLoRA's regulariser apart (as the CLI shows it): observed 8.3% over 30 steps at
// lr 0.02 (4.924 → 4.517); the sum with the regulariser, which the page showed before, fell ~22%
const MIN_LOSS_DROP = 0.05;
/**
 * Page (tfjs wasm backend, XNNPACK kernels) vs Node (native/cpu backend) logits of the same model:
 * float32 sums in different orders over hidden size 32 and 3 layers differ by ~1e-6 relative.
 */
const LOGIT_ATOL = 1e-4;

let server: Server | undefined;
let url = '';
let context: BrowserContext | undefined;
let page: Page;
const pageErrors: string[] = [];

before(async () => {
  if (!haveChromium) return;
  const t0 = Date.now();
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-chromium-'));
  // The build and the browser start in parallel (both take seconds on a shared machine).
  const launching = chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 1000 },
    args: [...CHROMIUM_ARGS, '--disable-component-update', '--disable-sync'],
  });
  try {
    await buildPage();
  } finally {
    context = await launching;
  }
  console.log(`# web e2e: vite build and browser start ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  ({ server, url } = await servePage(0));
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // wasm: the fastest backend on a GPU-less CI machine (WebGL there is software-rendered).
  await page.goto(`${url}?backend=wasm`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
});

after(async () => {
  await context?.close();
  server?.close();
});

test(
  'web page: demo model, AdaLoRA training, heatmap, download, Node parity',
  { skip: haveChromium ? false : `needs ${CHROMIUM}`, timeout: 180_000 },
  async (t) => {
    const t0 = Date.now();
    const lap = (what: string) => t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.match((await page.textContent('#backend')) ?? '', /^(wasm|webgl|webgpu|cpu)$/);
    await page.check('input[name="model-kind"][value="demo"]');
    await page.selectOption('#demo-arch', 'llama');
    await page.click('#load-model');
    await waitOn('load demo', `document.querySelector('#model-info').textContent.includes('llama')`);

    await page.selectOption('#method', 'adalora');
    await page.fill('#steps', String(TRAIN_STEPS));
    await page.fill('#adapter-name', 'ada');
    await page.fill('#batch', '4');
    await page.fill('#seq-len', '16');
    await page.fill('#lr', '0.02');
    lap('demo model loaded');
    await page.click('#train');
    await waitOn('train', `document.querySelector('#train-state').dataset.state === 'done'`, 120_000);
    lap(`trained ${TRAIN_STEPS} steps`);

    const losses = JSON.parse((await page.getAttribute('#loss-chart', 'data-losses')) ?? '[]') as [
      number,
      number,
    ][];
    assert.equal(losses.length, TRAIN_STEPS, 'one loss point per step is shown');
    const mean = (xs: [number, number][]) => xs.reduce((a, [, l]) => a + l, 0) / xs.length;
    const first = mean(losses.slice(0, 5));
    const last = mean(losses.slice(-5));
    assert.ok(
      last < first * (1 - MIN_LOSS_DROP),
      `the loss shown falls (first 5 steps ${first.toFixed(3)}, last 5 ${last.toFixed(3)})`,
    );

    const ranks = JSON.parse(
      (await page.getAttribute('#heatmap', 'data-ranks')) ?? 'null',
    ) as RankSnapshot | null;
    assert.ok(ranks, 'the heatmap has data');
    assert.equal(ranks.layers.length, 3);
    assert.ok(ranks.modules.length >= 2);
    assert.equal(
      await page.locator('#heatmap svg rect.cell').count(),
      ranks.layers.length * ranks.modules.length,
    );
    const total = ranks.ranks.flat().reduce((a, b) => a + b, 0);
    assert.ok(total < ranks.initR * ranks.layers.length * ranks.modules.length, 'AdaLoRA pruned some rank');

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'web-after-training.png'), fullPage: true });

    // Outputs in the page with the trained adapter.
    await page.fill('#prompt', 'the cat sat on');
    await page.fill('#max-new', '4');
    await page.click('#run');
    await waitOn('probe', `!!document.querySelector('#probe-logits').dataset.result`);
    const probe = JSON.parse((await page.getAttribute('#probe-logits', 'data-result'))!) as ProbeResult;
    assert.equal(probe.adapter, 'ada');
    lap('probed');

    // Download the adapter as PEFT files.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-web-adapter-'));
    const downloads: string[] = [];
    page.on('download', (d) => {
      downloads.push(d.suggestedFilename());
      void d.saveAs(path.join(dir, d.suggestedFilename()));
    });
    await page.click('#download');
    await page.waitForFunction(() => true);
    for (
      let i = 0;
      i < 200 &&
      !(
        fs.existsSync(path.join(dir, 'adapter_config.json')) &&
        fs.existsSync(path.join(dir, 'adapter_model.safetensors'))
      );
      i++
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(downloads.sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(config.peft_type, 'ADALORA');
    assert.ok(config.rank_pattern, 'the AdaLoRA config carries rank_pattern');

    lap('downloaded');
    // Node: the same demo base (same seed) + the downloaded files give the page's outputs.
    const { model } = buildDemo('llama', 0);
    lap('Node demo model built');
    const peft = await PeftModel.fromPretrained(model, dir);
    lap('Node adapter loaded');
    peft.eval();
    const logits = tf.tidy(() => {
      const ids = tf.tensor2d(probe.inputIds, [1, probe.inputIds.length], 'int32');
      const out = peft.forward({ inputIds: ids, attentionMask: tf.onesLike(ids) });
      return out.logits.slice([0, probe.inputIds.length - 1, 0], [1, 1, -1]).reshape([-1]);
    });
    const node = Array.from(await logits.data());
    logits.dispose();
    assert.equal(node.length, probe.logits.length);
    const diff = maxDiff(node, probe.logits);
    assert.ok(
      diff <= LOGIT_ATOL,
      `Node logits match the page's (max |diff| ${diff.toExponential(2)} > ${LOGIT_ATOL})`,
    );
    // The adapter changed the outputs: the base alone gives different logits.
    const base = buildDemo('llama', 0).model;
    const baseLogits = tf.tidy(() => {
      const ids = tf.tensor2d(probe.inputIds, [1, probe.inputIds.length], 'int32');
      return base
        .forward({ inputIds: ids })
        .logits.slice([0, probe.inputIds.length - 1, 0], [1, 1, -1])
        .reshape([-1]);
    });
    const baseDiff = maxDiff(await baseLogits.data(), node);
    baseLogits.dispose();
    assert.ok(
      baseDiff > 100 * LOGIT_ATOL,
      `the trained adapter changes the outputs (max |diff| vs base ${baseDiff})`,
    );
    assert.deepEqual(pageErrors, []);
  },
);

test(
  'web page: a bad file shows an in-page error',
  { skip: haveChromium ? false : `needs ${CHROMIUM}`, timeout: 60_000 },
  async () => {
    const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-web-bad-'));
    const adapterDir = path.join(bad, 'broken-adapter');
    fs.mkdirSync(adapterDir);
    fs.writeFileSync(path.join(adapterDir, 'adapter_config.json'), '{"peft_type": "LORA", "r": 8,');
    fs.writeFileSync(path.join(adapterDir, 'adapter_model.safetensors'), Buffer.from([1, 2, 3]));
    await page.setInputFiles('#adapter-folder', adapterDir);
    await page.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    const text = (await page.textContent('#error')) ?? '';
    assert.match(text, /CheckpointError/);
    assert.match(text, /adapter_config\.json/);

    // A model folder whose config.json is not JSON.
    await page.click('#error-close');
    const modelDir = path.join(bad, 'broken-model');
    fs.mkdirSync(modelDir);
    fs.writeFileSync(path.join(modelDir, 'config.json'), 'not json');
    fs.writeFileSync(path.join(modelDir, 'model.safetensors'), Buffer.alloc(0));
    await page.check('input[name="model-kind"][value="folder"]');
    await page.setInputFiles('#model-folder', modelDir);
    await page.click('#load-model');
    await page.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    const text2 = (await page.textContent('#error')) ?? '';
    assert.match(text2, /CheckpointError.*config\.json.*not valid JSON/s);

    // An adapter trained for a wider model: its shapes do not fit the loaded demo base.
    await page.click('#error-close');
    await page.check('input[name="model-kind"][value="demo"]');
    await page.click('#load-model');
    await waitOn('reload demo', `document.querySelector('#model-info').textContent.includes('llama')`);
    const wide = modelFromConfig({ ...demoConfig('llama'), hidden_size: 48, intermediate_size: 96 });
    const mismatched = path.join(bad, 'wide-adapter');
    await getPeftModel(wide, new LoraConfig({ r: 4, taskType: 'CAUSAL_LM' })).savePretrained(mismatched);
    await page.setInputFiles('#adapter-folder', mismatched);
    await page.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    const text3 = (await page.textContent('#error')) ?? '';
    assert.match(text3, /CheckpointError.*different shape/s);
    assert.equal(await page.inputValue('#adapters'), '', 'the failed adapter is not left active');
    assert.deepEqual(pageErrors, []);
  },
);

test(
  'web page: pause, resume and stop keep the adapter; switching adapters keeps outputs',
  { skip: haveChromium ? false : `needs ${CHROMIUM}`, timeout: 90_000 },
  async () => {
    await page.click('#error-close');
    await page.selectOption('#method', 'lora');
    await page.fill('#steps', '500');
    await page.fill('#adapter-name', 'paused');
    const stepOf = async () =>
      Number(/step (\d+)\//.exec((await page.textContent('#progress-text')) ?? '')?.[1] ?? 0);
    await page.click('#train');
    await page.waitForFunction(
      () => /step ([3-9]|\d\d+)\//.test(document.querySelector('#progress-text')!.textContent ?? ''),
      null,
      {
        timeout: 30_000,
      },
    );
    await page.click('#pause');
    // "pausing" while the step in flight finishes; "paused" only once the run waits between steps,
    // so the step shown at that moment is the last one until resume
    await page.waitForSelector('#train-state[data-state="paused"]', { timeout: 10_000 });
    const pausedAt = await stepOf();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await stepOf(), pausedAt, 'no step is reported after "paused" appears');
    await page.click('#resume');
    await page.waitForFunction(
      (s) =>
        Number(/step (\d+)\//.exec(document.querySelector('#progress-text')!.textContent ?? '')?.[1] ?? 0) >
        s,
      pausedAt,
      { timeout: 30_000 },
    );
    await page.click('#stop');
    await page.waitForSelector('#train-state[data-state="stopped"]', { timeout: 30_000 });
    const stoppedAt = await stepOf();
    assert.ok(stoppedAt > pausedAt && stoppedAt < 500, `stopped at step ${stoppedAt}, paused at ${pausedAt}`);
    // The stopped run's adapter is kept, active and usable.
    await page.waitForFunction(
      () => (document.querySelector('#adapters') as HTMLSelectElement).value === 'paused',
    );
    await page.evaluate(() => delete document.querySelector<HTMLElement>('#probe-logits')!.dataset.result);
    await page.click('#run');
    await waitOn('probe after stop', `!!document.querySelector('#probe-logits').dataset.result`);
    const probe = JSON.parse((await page.getAttribute('#probe-logits', 'data-result'))!) as ProbeResult;
    assert.equal(probe.adapter, 'paused');

    // Switching to the bare base and back (no base reload) gives the same outputs again.
    const probeWith = async (adapter: string): Promise<ProbeResult> => {
      await page.selectOption('#adapters', adapter);
      await page.evaluate(() => delete document.querySelector<HTMLElement>('#probe-logits')!.dataset.result);
      await page.click('#run');
      await waitOn(`probe ${adapter}`, `!!document.querySelector('#probe-logits').dataset.result`);
      return JSON.parse((await page.getAttribute('#probe-logits', 'data-result'))!) as ProbeResult;
    };
    const bare = await probeWith('');
    assert.equal(bare.adapter, null);
    assert.notDeepEqual(bare.logits, probe.logits);
    const again = await probeWith('paused');
    assert.equal(again.adapter, 'paused');
    assert.deepEqual(again.logits, probe.logits);
    assert.deepEqual(pageErrors, []);
  },
);

test(
  'web page: a Hugging Face folder loads, is kept in IndexedDB and loads again after a reload',
  { skip: haveChromium ? false : `needs ${CHROMIUM}`, timeout: 60_000 },
  async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-web-hf-'));
    const dir = path.join(root, 'tiny-llama');
    await saveModel(buildDemo('llama', 7).model, dir, {
      tokenizerFiles: {
        'tokenizer.json': JSON.stringify(demoTokenizerJson('llama')),
        'tokenizer_config.json': JSON.stringify(demoTokenizerConfig('llama')),
      },
    });
    await page.setInputFiles('#model-folder', dir);
    assert.equal(await page.isChecked('input[name="model-kind"][value="folder"]'), true);
    await page.click('#load-model');
    await waitOn('load folder', `document.querySelector('#model-name').textContent === 'tiny-llama'`);
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
    await page.waitForSelector('#stored-models option[value="tiny-llama"]', {
      state: 'attached',
      timeout: 10_000,
    });
    await page.selectOption('#stored-models', 'tiny-llama');
    await page.click('#load-stored');
    await waitOn('load saved', `document.querySelector('#model-name').textContent === 'tiny-llama'`);
    assert.match((await page.textContent('#model-info')) ?? '', /llama · CAUSAL_LM · 38,432 parameters/);
    assert.deepEqual(pageErrors, []);
  },
);

const STORIES = path.resolve('../shared/data/models/stories260K');
const haveStories = fs.existsSync(path.join(STORIES, 'oracle.json'));

test(
  'web page: a llama2.c checkpoint + tokenizer generates the oracle text (stories260K)',
  {
    skip: !haveChromium
      ? `needs ${CHROMIUM}`
      : haveStories
        ? false
        : `needs ../shared/data/models/stories260K (absent at ${STORIES})`,
    timeout: 60_000,
  },
  async () => {
    const oracle = JSON.parse(fs.readFileSync(path.join(STORIES, 'oracle.json'), 'utf8')) as {
      greedy_256_steps_text: string;
    };
    await page.setInputFiles('#llama2c-bin', path.join(STORIES, 'stories260K.bin'));
    await page.setInputFiles('#llama2c-tok', path.join(STORIES, 'tok512.bin'));
    await page.click('#load-model');
    await waitOn('load llama2.c', `document.querySelector('#model-name').textContent === 'stories260K.bin'`);
    await page.fill('#prompt', 'Once upon a time');
    await page.fill('#max-new', '12');
    await page.selectOption('#adapters', '');
    await page.evaluate(() => delete document.querySelector<HTMLElement>('#probe-logits')!.dataset.result);
    await page.click('#run');
    await waitOn('generate', `!!document.querySelector('#probe-logits').dataset.result`);
    const text = ((await page.textContent('#output')) ?? '').trim();
    assert.ok(text.length > 'Once upon a time'.length + 10, `generated: ${text}`);
    assert.ok(
      oracle.greedy_256_steps_text.startsWith(text),
      `page: ${JSON.stringify(text)} vs oracle greedy text`,
    );
    assert.deepEqual(pageErrors, []);
  },
);

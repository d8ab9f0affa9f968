// Backend conformance in headless Chromium (issue 12): the shared cases of src/testing/conformance on
// wasm, WebGL and WebGPU (Chromium started with --enable-unsafe-webgpu; on a machine without a GPU
// both run on SwiftShader, which is fine for correctness), each against tfjs's cpu in the same page.
// A backend that cannot start is reported as skipped with its own error. Also checks that `auto`
// passes over software renderers with the real reason.
//   npm test -- tests/conformance_browser
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Page } from 'playwright-core';
import type { BackendResult } from '../src/testing/conformance/index.js';
import { failures, writeResults } from './conformance/report.js';
import { CHROMIUM, openConformancePage, type ConformancePage } from './conformance/browser.js';

const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium)
  console.log(`# browser conformance skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);
const BROWSER_BACKENDS = ['wasm', 'webgl', 'webgpu'];

let opened: ConformancePage | undefined;
let page: Page;

before(async () => {
  if (!haveChromium) return;
  opened = await openConformancePage();
  page = opened.page;
});

after(async () => {
  await opened?.close();
});

test(
  'conformance in Chromium: wasm, WebGL and WebGPU equal cpu on every case',
  { skip: haveChromium ? false : `needs ${CHROMIUM}`, timeout: 600_000 },
  async () => {
    const t0 = Date.now();
    const results = (await page.evaluate(
      (b) =>
        (window as unknown as { lowrankConformance(b: string[]): Promise<unknown> }).lowrankConformance(b),
      BROWSER_BACKENDS,
    )) as BackendResult[];
    const file = writeResults('chromium', results, {
      command: 'npm test -- tests/conformance_browser',
      browser: `${opened!.context.browser()?.version() ?? 'chromium'} headless, --enable-unsafe-webgpu`,
      machine: `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, no GPU, load ${os.loadavg()[0]!.toFixed(1)}`,
      seconds: ((Date.now() - t0) / 1000).toFixed(1),
    });
    for (const r of results)
      if (r.skipped) console.log(`# conformance (chromium): ${r.backend} skipped: ${r.skipped}`);
    for (const r of results)
      if (r.adapter) console.log(`# conformance (chromium): ${r.backend} on ${r.adapter}`);
    console.log(`# conformance (chromium): ${((Date.now() - t0) / 1000).toFixed(1)} s → ${file}`);
    assert.deepEqual(failures(results), []);
    assert.deepEqual(opened!.pageErrors, []);
  },
);

test(
  'auto in Chromium passes over software renderers, saying why',
  { skip: haveChromium ? false : `needs ${CHROMIUM}` },
  async () => {
    const report = (await page.evaluate(() =>
      (window as unknown as { auto(n: string): Promise<unknown> }).auto('auto'),
    )) as { backend: string; tried: { name: string; ok: boolean; reason?: string }[] };
    console.log(`# auto: ${JSON.stringify(report)}`);
    for (const t of report.tried.filter((x) => !x.ok))
      assert.ok(t.reason && t.reason.length > 10, `${t.name}: a real reason`);
    const software = report.tried.filter((t) => /software renderer/.test(t.reason ?? ''));
    // On this GPU-less machine both GPU backends are SwiftShader: auto must land on wasm.
    if (software.length === 2) assert.equal(report.backend, 'wasm');
    assert.ok(
      !['webgl', 'webgpu'].includes(report.backend) || software.length === 0,
      `auto chose ${report.backend} over wasm`,
    );
  },
);

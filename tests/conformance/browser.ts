/**
 * Builds the conformance page (tests/conformance/page, with the library's browser swaps from
 * web/vite.config.ts) and opens it in Debian's headless Chromium with WebGPU enabled. Shared by the
 * browser conformance test, the must-show training test and bench/page_backends.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Server } from 'node:http';
import type { BrowserContext, Page } from 'playwright-core';
import { servePage } from '../../web/serve.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface ConformancePage {
  page: Page;
  context: BrowserContext;
  server: Server;
  pageErrors: string[];
  close(): Promise<void>;
}

async function build(outDir: string): Promise<void> {
  const { build: viteBuild } = await import('vite');
  const { lowrankBrowser } = await import('../../web/vite.config.js');
  await viteBuild({
    configFile: false,
    root: path.resolve('tests/conformance/page'),
    base: './',
    logLevel: 'warn',
    plugins: [lowrankBrowser()],
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2022',
      chunkSizeWarningLimit: 8000,
      reportCompressedSize: false,
      rolldownOptions: { checks: { pluginTimings: false }, output: { keepNames: true } },
    },
  });
}

/**
 * Builds, serves and opens the page; `close()` ends the browser and the server and removes the build.
 * @example const p = await openConformancePage(); await p.page.evaluate(...); await p.close();
 */
export async function openConformancePage(): Promise<ConformancePage> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-conformance-'));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-chromium-'));
  const { chromium } = await import('playwright-core');
  // --enable-unsafe-webgpu: Chromium's WebGPU on Linux (a SwiftShader fallback adapter without a GPU);
  // --enable-unsafe-swiftshader: WebGL on SwiftShader when there is no GPU.
  const launching = chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--enable-unsafe-swiftshader',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  let context: BrowserContext;
  try {
    await build(out);
  } finally {
    context = await launching;
  }
  const { server, url } = await servePage(0, { dir: out });
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  return {
    page,
    context,
    server,
    pageErrors,
    async close() {
      await context.close();
      server.close();
      fs.rmSync(out, { recursive: true, force: true });
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

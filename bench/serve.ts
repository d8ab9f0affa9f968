/**
 * `node --import tsx bench/serve.ts [--clients 8] [--adapters 4] [--requests 48] [--max-tokens 32]
 *  [--seconds 90] [--models demo,stories260K] [--json out.json]`
 *
 * Load benchmark of `lowrank serve` on loopback (127.0.0.1 only; bounded in requests and seconds):
 * N closed-loop clients send greedy completions round-robin over M LoRA adapters, against
 *   batching  — the server as shipped (continuous batching across adapters, --max-active = N),
 *   serial    — the same server with --max-active 1 (one request at a time),
 *   merged    — one request at a time, the request's adapter merged into the base weights before
 *               decoding and unmerged after (a server that swaps merged adapters per request).
 * Reports generated tokens/s and p50/p99 request latency, on a demo-size Llama (random weights) and
 * on stories260K when ../shared/data holds it. Run it on an idle machine for numbers.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../src/tensor/backend.js';
import { ALPHABET, charTokenizerFile, demoModelConfig } from '../src/cli/demo/language.js';
import { modelFromConfig } from '../src/models/from_config.js';
import { loadModel, saveModel } from '../src/models/load.js';
import { generate } from '../src/models/generate.js';
import type { PreTrainedModel } from '../src/models/base.js';
import { manualSeed } from '../src/nn/init.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { tokenizerPathFor } from '../src/run/data.js';
import { getPeftModel, PeftModel } from '../src/tuners/index.js';
import { LoraConfig } from '../src/tuners/lora/index.js';
import { perturbAdapter } from '../src/testing/tuner_matrix.js';
import { createServer } from '../src/serve/index.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : dflt;
};
const CLIENTS = Number(opt('clients', '8'));
const ADAPTERS = Number(opt('adapters', '4'));
const REQUESTS = Number(opt('requests', '48'));
const MAX_TOKENS = Number(opt('max-tokens', '32'));
const SECONDS = Number(opt('seconds', '90'));
const MODELS = opt('models', 'demo,stories260K').split(',');
const STORIES = path.resolve(import.meta.dirname, '../../shared/data/models/stories260K/stories260K.bin');
const PROMPTS = ['Once upon a time', 'The little dog', '12+30=', 'Lily saw a big', 'One day, a boy'];

interface Row {
  model: string;
  mode: string;
  requests: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  p50: number;
  p99: number;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** N closed-loop clients, round-robin over adapters, until REQUESTS are sent or SECONDS pass. */
async function load(url: string, names: string[]): Promise<Omit<Row, 'model' | 'mode'>> {
  const lat: number[] = [];
  let tokens = 0;
  let next = 0;
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < REQUESTS && performance.now() < deadline) {
        const i = next++;
        const s = performance.now();
        const r = await fetch(`${url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: names[i % names.length],
            prompt: PROMPTS[i % PROMPTS.length],
            max_tokens: MAX_TOKENS,
            temperature: 0,
          }),
        });
        const body = (await r.json()) as { usage?: { completion_tokens: number }; error?: unknown };
        if (!r.ok) throw new Error(`HTTP ${r.status}: ${JSON.stringify(body)}`);
        tokens += body.usage!.completion_tokens;
        lat.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return {
    requests: lat.length,
    tokens,
    seconds,
    tokensPerSecond: tokens / seconds,
    p50: quantile(lat, 0.5),
    p99: quantile(lat, 0.99),
  };
}

/** The baseline: a loopback server that merges the request's adapter, decodes, unmerges; one at a time. */
async function mergedServer(modelPath: string, adapterDir: string, names: string[]) {
  const tok = await loadTokenizer(tokenizerPathFor(modelPath));
  const base = await loadModel(modelPath, { seed: 0 });
  const peft = await PeftModel.fromPretrained(base, path.join(adapterDir, names[0]!), {
    adapterName: names[0]!,
  });
  for (const n of names.slice(1)) await peft.loadAdapter(path.join(adapterDir, n), n);
  peft.eval();
  let chain = Promise.resolve();
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('end', () => {
      chain = chain
        .then(async () => {
          const b = JSON.parse(data) as { model: string; prompt: string; max_tokens: number };
          peft.setAdapter(b.model);
          peft.merge();
          try {
            const ids = await generate(peft.getBaseModel() as PreTrainedModel, tok.encode(b.prompt), {
              maxNewTokens: b.max_tokens,
              temperature: 0,
              eosTokenId: tok.eosTokenId,
            });
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify({ usage: { completion_tokens: ids.length } }));
          } finally {
            peft.unmerge();
          }
        })
        .catch((e: unknown) => {
          res.statusCode = 500;
          res.end(JSON.stringify({ error: { message: String(e) } }));
        });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await new Promise((r) => server.close(r));
      peft.dispose();
    },
  };
}

async function makeAdapters(modelPath: string, dir: string): Promise<string[]> {
  const names = Array.from({ length: ADAPTERS }, (_, i) => `task_${i}`);
  for (const [i, n] of names.entries()) {
    const peft = getPeftModel(
      await loadModel(modelPath, { seed: 0 }),
      new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] }),
    );
    perturbAdapter(peft as never, i + 1, 0.02);
    await peft.savePretrained(path.join(dir, n));
    peft.dispose();
  }
  return names;
}

async function demoModel(dir: string): Promise<string> {
  manualSeed(0);
  const m = modelFromConfig(
    { ...demoModelConfig(259 + ALPHABET.length), max_position_embeddings: 256 },
    { task: 'CAUSAL_LM' },
  );
  const out = path.join(dir, 'demo-model');
  await saveModel(m, out, { tokenizerFiles: { 'tok.bin': charTokenizerFile(ALPHABET) } });
  m.dispose();
  return out;
}

async function benchModel(label: string, modelPath: string, dir: string): Promise<Row[]> {
  const adapterDir = path.join(dir, `${label}-adapters`);
  const names = await makeAdapters(modelPath, adapterDir);
  const rows: Row[] = [];
  for (const [mode, maxActive] of [
    ['batching', CLIENTS],
    ['serial', 1],
  ] as const) {
    const s = await createServer({
      model: modelPath,
      adapters: adapterDir,
      port: 0,
      logger: false,
      maxActive,
      maxQueue: CLIENTS * 2,
    });
    const url = await s.listen();
    await load(url, names); // warm-up (adapters loaded, kernels warm), not measured
    rows.push({ model: label, mode, ...(await load(url, names)) });
    await s.close();
  }
  const merged = await mergedServer(modelPath, adapterDir, names);
  rows.push({ model: label, mode: 'merged', ...(await load(merged.url, names)) });
  await merged.close();
  return rows;
}

await initBackend('auto');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-bench-serve-'));
const rows: Row[] = [];
try {
  if (MODELS.includes('demo'))
    rows.push(...(await benchModel('demo (48 wide, 3 layers)', await demoModel(dir), dir)));
  if (MODELS.includes('stories260K')) {
    if (fs.existsSync(STORIES)) rows.push(...(await benchModel('stories260K', STORIES, dir)));
    else console.error(`skipping stories260K: ${STORIES} is absent`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(
  `${CLIENTS} clients, ${ADAPTERS} adapters (LoRA r=8 on q,k,v,o), ≤${REQUESTS} requests × ${MAX_TOKENS} tokens, greedy; loadavg ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')} on ${os.availableParallelism()} cores`,
);
console.log('| model | mode | requests | tokens | s | tokens/s | p50 ms | p99 ms |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.model} | ${r.mode} | ${r.requests} | ${r.tokens} | ${r.seconds.toFixed(1)} | ${r.tokensPerSecond.toFixed(0)} | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} |`,
  );
const json = args.includes('--json') ? opt('json', '') : '';
if (json) fs.writeFileSync(json, JSON.stringify(rows, null, 2));

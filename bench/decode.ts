/**
 * `node --import tsx bench/decode.ts [--runc <llama2.c folder or run.c>] [--steps 256] [--reps 3]
 *  [--shapes 260K,15M,42M,110M] [--variants lora16,nf4] [--tfjs-steps 32] [--json <file>]`
 *
 * Decode benchmark (issue 17): greedy tokens/s of lowrank's native decode engine at llama2.c shapes —
 * stories260K from ../shared/data/models/stories260K and random-weight 15M/42M/110M-shaped
 * checkpoints written to a temp dir — against llama2.c's run.c built here from the path given
 * (`gcc -Ofast -march=native`, one thread; never vendored), or, without --runc, against a
 * plain-PyTorch greedy loop (bench/decode_torch.py, one thread). lowrank runs one thread too.
 * tokens/s counts the steps after the first, as run.c reports it; each side runs --reps times,
 * alternated, and the best of each is kept (other processes' load hits both alike). Every configuration also runs its
 * parity check: the native engine's greedy ids against the tfjs path's (first --tfjs-steps tokens,
 * whose speed is the "tfjs path" column) and against the anchor's ids. --variants adds lowrank-only
 * rows per shape: `lora16` (unmerged LoRA r 16 on q_proj, v_proj) and `nf4` (4-bit double-quant
 * base weights decoded inside the kernel).
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, setThreads } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { generate } from '../src/models/generate.js';
import { nativeDecodeSupport } from '../src/models/native_decode.js';
import { Rng } from '../src/util/rng.js';
import '../src/tuners/index.js'; // registers the tuners
import { getPeftModel } from '../src/tuners/peft_model.js';
import { LoraConfig } from '../src/tuners/lora/config.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt?: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const STEPS = Number(opt('steps', '256')); // run.c's -n: BOS + STEPS − 1 generated tokens
const TFJS_STEPS = Number(opt('tfjs-steps', '32'));
const REPS = Number(opt('reps', '3'));
/** Extra lowrank-only rows per shape: unmerged LoRA r16 on q,v; NF4 (double-quant) base weights. */
const VARIANTS = opt('variants', 'lora16,nf4')!.split(',').filter(Boolean);
const HERE = dirname(fileURLToPath(import.meta.url));
const STORIES = join(HERE, '..', '..', 'shared', 'data', 'models', 'stories260K');

/** llama2.c's model shapes (its README table): dim, hidden, layers, heads, kv heads, vocab. */
const SHAPES: Record<string, [number, number, number, number, number, number]> = {
  '15M': [288, 768, 6, 6, 6, 32000],
  '42M': [512, 1376, 8, 8, 8, 32000],
  '110M': [768, 2048, 12, 12, 12, 32000],
};

/** Writes a v0 llama2.c checkpoint with N(0, 0.02²) weights (norm gains 1), shared classifier. */
function writeRandomCheckpoint(path: string, shape: (typeof SHAPES)[string], seqLen: number, seed: number) {
  const [dim, hidden, L, H, KV, vocab] = shape;
  const hs = dim / H;
  const kv = hs * KV;
  const rng = new Rng(seed);
  const fd = openSync(path, 'w');
  writeSync(fd, new Uint8Array(new Int32Array([dim, hidden, L, H, KV, vocab, seqLen]).buffer));
  const put = (n: number, fill: 'normal' | 'one' | 'zero') => {
    const chunk = 1 << 20;
    for (let done = 0; done < n; done += chunk) {
      const len = Math.min(chunk, n - done);
      const a =
        fill === 'normal'
          ? rng.normalArray(len, 0, 0.02)
          : new Float32Array(len).fill(fill === 'one' ? 1 : 0);
      writeSync(fd, new Uint8Array(a.buffer));
    }
  };
  put(vocab * dim, 'normal');
  put(L * dim, 'one');
  put(L * dim * dim, 'normal');
  put(L * kv * dim, 'normal');
  put(L * kv * dim, 'normal');
  put(L * dim * dim, 'normal');
  put(L * dim, 'one');
  put(L * hidden * dim, 'normal');
  put(L * dim * hidden, 'normal');
  put(L * hidden * dim, 'normal');
  put(dim, 'one');
  put(seqLen * hs, 'zero'); // freq_cis real + imag (unused by run.c and lowrank)
  closeSync(fd);
}

/** A run.c tokenizer whose token i prints as `[i]`, so run.c's output parses back to ids. */
function writeIdTokenizer(path: string, vocab: number) {
  const parts: Uint8Array[] = [new Uint8Array(new Int32Array([16]).buffer)];
  for (let i = 0; i < vocab; i++) {
    const piece = Buffer.from(`[${i}]`);
    const head = new DataView(new ArrayBuffer(8));
    head.setFloat32(0, 0, true);
    head.setInt32(4, piece.length, true);
    parts.push(new Uint8Array(head.buffer), piece);
  }
  writeFileSync(path, Buffer.concat(parts));
}

interface Anchor {
  name: string;
  tokS: number;
  ids: number[] | null;
}

function buildRunC(given: string, dir: string): string {
  const src = statSync(given).isDirectory() ? join(given, 'run.c') : given;
  if (!existsSync(src)) throw new Error(`--runc: no run.c at ${src}`);
  const exe = join(dir, 'run');
  const r = spawnSync('gcc', ['-Ofast', '-march=native', '-o', exe, src, '-lm'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building run.c failed:\n${r.stderr}`);
  return exe;
}

function runC(exe: string, model: string, tok: string, parseIds: boolean): Anchor {
  const r = spawnSync(exe, [model, '-z', tok, '-t', '0', '-n', String(STEPS), '-i', ''], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  const m = /achieved tok\/s: ([\d.]+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`run.c failed: ${r.stderr}`);
  const ids = parseIds ? [...r.stdout.matchAll(/\[(\d+)\]/g)].map((x) => Number(x[1])) : null;
  return { name: 'run.c', tokS: Number(m[1]), ids };
}

function torchLoop(model: string): Anchor {
  const r = spawnSync('/usr/bin/python3', [join(HERE, 'decode_torch.py'), model, String(STEPS)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`decode_torch.py failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { tokS: number; ids: number[] };
  return { name: 'PyTorch loop', tokS: out.tokS, ids: out.ids };
}

/**
 * Greedy without a callback: `generate` runs the whole loop in one addon call; tokens/s over all n
 * tokens (the first included — with the one-token prompt it costs what the others do).
 */
async function lowrankLoop(model: Awaited<ReturnType<typeof loadModel>>, n: number) {
  const t0 = performance.now();
  const ids = await generate(model, [1], { maxNewTokens: n });
  return { tokS: (ids.length / (performance.now() - t0)) * 1000, ids };
}

/** tokens/s after the first token (run.c's convention) and the ids; a callback per token. */
async function lowrank(model: Awaited<ReturnType<typeof loadModel>>, n: number, native: boolean) {
  const stamps: number[] = [];
  const ids = await generate(model, [1], {
    maxNewTokens: n,
    native,
    onToken: () => stamps.push(performance.now()),
  });
  return { tokS: ((stamps.length - 1) / (stamps.at(-1)! - stamps[0]!)) * 1000, ids };
}

function leadingAgreement(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

async function main() {
  await initBackend('native');
  setThreads(1);
  const dir = mkdtempSync(join(tmpdir(), 'lowrank-decode-bench-'));
  const rows: Record<string, unknown>[] = [];
  try {
    const runcPath = opt('runc');
    const exe = runcPath ? buildRunC(runcPath, dir) : null;
    const wanted = opt('shapes', '260K,15M,42M,110M')!.split(',');
    for (const shape of wanted) {
      let modelPath: string;
      let tokPath: string;
      if (shape === '260K') {
        modelPath = join(STORIES, 'stories260K.bin');
        tokPath = join(STORIES, 'tok512.bin');
        if (!existsSync(modelPath)) {
          console.log(`skip 260K: ${modelPath} absent`);
          continue;
        }
      } else {
        modelPath = join(dir, `${shape}.bin`);
        tokPath = join(dir, 'tok32000.bin');
        writeRandomCheckpoint(modelPath, SHAPES[shape]!, 1024, 17);
        if (!existsSync(tokPath)) writeIdTokenizer(tokPath, 32000);
      }
      const model = await loadModel(modelPath);
      const why = nativeDecodeSupport(model);
      if (why) throw new Error(`${shape}: native decode not available: ${why}`);
      await lowrank(model, 8, true); // warm-up
      // Alternated repetitions, best of each: load from other processes hits both sides alike.
      let nat = await lowrank(model, STEPS - 1, true);
      let loop = await lowrankLoop(model, STEPS - 1);
      let anchor = exe ? runC(exe, modelPath, tokPath, shape !== '260K') : torchLoop(modelPath);
      for (let rep = 1; rep < REPS; rep++) {
        const n = await lowrank(model, STEPS - 1, true);
        if (n.tokS > nat.tokS) nat = n;
        const l = await lowrankLoop(model, STEPS - 1);
        if (l.tokS > loop.tokS) loop = l;
        const a = exe ? runC(exe, modelPath, tokPath, shape !== '260K') : torchLoop(modelPath);
        if (a.tokS > anchor.tokS) anchor = a;
      }
      const tfjs = await lowrank(model, TFJS_STEPS, false);
      const tfjsAgree = leadingAgreement(nat.ids, tfjs.ids);
      const anchorAgree = anchor.ids ? leadingAgreement(nat.ids, anchor.ids) : null;
      rows.push({
        shape,
        anchor: anchor.name,
        anchorTokS: anchor.tokS,
        nativeTokS: nat.tokS,
        ratio: nat.tokS / anchor.tokS,
        loopTokS: loop.tokS,
        loopRatio: loop.tokS / anchor.tokS,
        loopAgree: `${leadingAgreement(loop.ids, nat.ids)}/${nat.ids.length}`,
        tfjsTokS: tfjs.tokS,
        tfjsAgree: `${tfjsAgree}/${tfjs.ids.length}`,
        anchorAgree: anchorAgree === null ? 'n/a' : `${anchorAgree}/${nat.ids.length}`,
      });
      model.dispose();
      console.log(JSON.stringify(rows.at(-1)));
      for (const variant of VARIANTS) {
        const m = await loadModel(modelPath, variant === 'nf4' ? { quantize: 'nf4', doubleQuant: true } : {});
        if (variant === 'lora16') {
          const cfg = { r: 16, loraAlpha: 32, targetModules: ['q_proj', 'v_proj'], initLoraWeights: false };
          getPeftModel(m, new LoraConfig(cfg));
        }
        const whyNot = nativeDecodeSupport(m);
        if (whyNot) throw new Error(`${shape} ${variant}: native decode not available: ${whyNot}`);
        let best = await lowrank(m, STEPS - 1, true);
        for (let rep = 1; rep < REPS; rep++) {
          const n = await lowrank(m, STEPS - 1, true);
          if (n.tokS > best.tokS) best = n;
        }
        const ref = await lowrank(m, TFJS_STEPS, false);
        rows.push({
          shape: `${shape} ${variant}`,
          anchor: '—',
          anchorTokS: NaN,
          nativeTokS: best.tokS,
          ratio: NaN,
          loopTokS: NaN,
          loopRatio: NaN,
          loopAgree: 'n/a',
          tfjsTokS: ref.tokS,
          tfjsAgree: `${leadingAgreement(best.ids, ref.ids)}/${ref.ids.length}`,
          anchorAgree: 'n/a',
        });
        m.dispose();
        console.log(JSON.stringify(rows.at(-1)));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    `\nload average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}; one thread each; ${STEPS} steps; best of ${REPS} alternated runs`,
  );
  console.log(
    '| shape | anchor | anchor tok/s | native tok/s (callback per token) | ratio | native tok/s (one-call greedy loop) | ratio | tfjs path tok/s | ids = tfjs | ids = anchor | loop ids = per-token ids |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const f = (x: unknown, d = 0) => (Number.isNaN(x) ? '—' : (x as number).toFixed(d));
    console.log(
      `| ${String(r.shape)} | ${String(r.anchor)} | ${f(r.anchorTokS)} | ${f(r.nativeTokS)} | ${f(r.ratio, 2)}${Number.isNaN(r.ratio) ? '' : '×'} | ${f(r.loopTokS)} | ${f(r.loopRatio, 2)}${Number.isNaN(r.loopRatio) ? '' : '×'} | ${f(r.tfjsTokS)} | ${String(r.tfjsAgree)} | ${String(r.anchorAgree)} | ${String(r.loopAgree)} |`,
    );
  }
  const json = opt('json');
  if (json) writeFileSync(json, JSON.stringify({ loadavg: loadavg(), steps: STEPS, rows }, null, 2));
}

await main();

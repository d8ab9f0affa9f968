import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { ADALORA_FLAGS, CLI_ENTRY, flags, tinyWorld, tmp, worldFlags } from '../src/testing/cli_runner.js';

const BIN = CLI_ENTRY;
// Polling interval for the checkpoint marker; small against a training step, so the kill lands
// at (or shortly after) the step we aimed for.
const POLL_MS = 20;

function trainArgs(w: { model: string; train: string; dev: string }, out: string): string[] {
  return [
    ...BIN,
    'train',
    ...flags({
      ...worldFlags(w),
      ...ADALORA_FLAGS,
      'target-modules': 'q_proj,v_proj,up_proj',
      'max-steps': 16,
      'save-every': 2,
      'eval-every': 5,
      'batch-size': 8,
      lr: 0.01,
      'lora-dropout': 0.1,
      backend: 'cpu',
      q: true,
      'no-report': true,
      o: out,
    }),
  ];
}

/** Starts a training child and SIGKILLs it once checkpoint `step` is complete (or right away for 0). */
function killAt(args: string[], out: string, step: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const marker = path.join(
      out,
      'checkpoints',
      `step-${String(step).padStart(6, '0')}`,
      'trainer_state.json',
    );
    const started = path.join(out, 'log.jsonl');
    const timer = setInterval(() => {
      if (fs.existsSync(step === 0 ? started : marker)) {
        clearInterval(timer);
        child.kill('SIGKILL');
      }
    }, POLL_MS);
    child.on('exit', (code, signal) => {
      clearInterval(timer);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`child ended before the kill (code ${code}): ${err}`));
    });
  });
}

test(
  'kill -9 at several points, resume each: adapter files byte-identical to an uninterrupted run',
  { timeout: 900_000 },
  async () => {
    const dir = tmp();
    const w = await tinyWorld(dir);
    const full = path.join(dir, 'full');
    const r = spawnSync(process.execPath, trainArgs(w, full), { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const want = fs.readFileSync(path.join(full, 'adapter', 'adapter_model.safetensors'));
    const wantCfg = fs.readFileSync(path.join(full, 'adapter', 'adapter_config.json'));
    for (const step of [0, 4, 10]) {
      const out = path.join(dir, `killed-${step}`);
      await killAt(trainArgs(w, out), out, step);
      const res = spawnSync(process.execPath, [...BIN, 'train', '-o', out, '--resume'], { encoding: 'utf8' });
      assert.equal(res.status, 0, res.stderr);
      const temps: string[] = [];
      const walk = (d: string) => {
        for (const n of fs.readdirSync(d)) {
          const p = path.join(d, n);
          if (fs.statSync(p).isDirectory()) walk(p);
          else if (n.endsWith('.tmp')) temps.push(p);
        }
      };
      walk(out);
      assert.deepEqual(temps, [], `temp files left after a kill at step ${step} and resume`);
      const got = fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors'));
      assert.ok(got.equals(want), `adapter bytes differ after a kill at step ${step}`);
      assert.ok(
        fs.readFileSync(path.join(out, 'adapter', 'adapter_config.json')).equals(wantCfg),
        `adapter_config differs (kill at ${step})`,
      );
      const steps = fs
        .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((l) => l.type === 'train')
        .map((l) => l.step);
      assert.deepEqual(
        steps,
        [...Array(16).keys()].map((i) => i + 1),
        `log after a kill at ${step}`,
      );
    }
  },
);

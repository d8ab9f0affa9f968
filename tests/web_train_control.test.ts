// Pause / resume / stop of the web worker's training loop, driven like the worker drives it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TrainControl } from '../web/train_control.js';

/** Waits (polling the event loop) until the control reaches `state`. */
async function until(c: TrainControl, state: string): Promise<void> {
  for (let i = 0; i < 1000 && c.state !== state; i++) await new Promise((r) => setTimeout(r, 2));
  assert.equal(c.state, state);
}

/** A fake loop: counts steps, asking the control between them, as the worker's train loop does. */
async function loop(c: TrainControl, maxSteps: number, onStep: (s: number) => void): Promise<number> {
  let step = 0;
  while (step < maxSteps) {
    step++;
    onStep(step);
    if (!(await c.between())) break;
  }
  c.finish();
  return step;
}

test('pause holds the loop at a step boundary; resume continues; the run ends done', async () => {
  const c = new TrainControl();
  const states: string[] = [];
  c.onChange((s) => states.push(s));
  assert.equal(c.start(), true);
  assert.equal(c.start(), false, 'a second run is refused while one is active');
  const run = loop(c, 20, (s) => {
    if (s === 5) c.pause();
  });
  await until(c, 'paused');
  c.resume();
  const steps = await run;
  assert.equal(steps, 20);
  assert.deepEqual(states, ['running', 'paused', 'running', 'done']);
});

test('stop from paused ends the loop after the completed steps', async () => {
  const c = new TrainControl();
  c.start();
  const seen: number[] = [];
  const run = loop(c, 100, (s) => {
    seen.push(s);
    if (s === 3) c.pause();
  });
  await until(c, 'paused');
  assert.equal(c.stop(), 'stopping');
  assert.equal(await run, 3);
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(c.state, 'stopped');
  assert.equal(c.start(), true, 'a new run can start after a stop');
});

// Pause / resume / stop of the web worker's training loop, driven like the worker drives it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TrainControl } from '../web/train_control.js';

/** Waits (polling the event loop) until the control reaches `state`. */
async function until(c: TrainControl, state: string): Promise<void> {
  for (let i = 0; i < 1000 && c.state !== state; i++) await new Promise((r) => setTimeout(r, 2));
  assert.equal(c.state, state);
}

/**
 * A fake loop: counts steps, asking the control between them, as the Trainer does for the worker.
 * Each step first yields to the event loop (the worker's step awaits its asynchronous reads) and
 * calls `inFlight` there, so a pause can be asked for while a step is in flight.
 */
async function loop(
  c: TrainControl,
  maxSteps: number,
  onStep: (s: number) => void,
  inFlight: (s: number) => void = () => {},
): Promise<number> {
  let step = 0;
  while (step < maxSteps) {
    await new Promise((r) => setTimeout(r, 1));
    inFlight(step + 1);
    await new Promise((r) => setTimeout(r, 1));
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
  assert.deepEqual(states, ['running', 'pausing', 'paused', 'running', 'done']);
});

test('a pause asked for mid-step is "pausing" until that step has reported; no step is reported after "paused"', async () => {
  const c = new TrainControl();
  c.start();
  const events: string[] = [];
  c.onChange((s) => events.push(s));
  const asked: string[] = [];
  const run = loop(
    c,
    100,
    (s) => events.push(`step ${s}`),
    (s) => s === 3 && asked.push(c.pause()),
  );
  await until(c, 'paused');
  const atPause = events.length;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(events.length, atPause, `nothing happens while paused: ${events.join(', ')}`);
  assert.deepEqual(asked, ['pausing']);
  assert.deepEqual(events, ['step 1', 'step 2', 'pausing', 'step 3', 'paused']);
  assert.equal(c.stop(), 'stopping');
  assert.equal(await run, 3, 'stopped with the step that was in flight when the pause was asked');
  assert.equal(c.state, 'stopped');
});

test('resume withdraws a pause not yet reached; stop from pausing ends the run at the boundary', async () => {
  const c = new TrainControl();
  c.start();
  assert.equal(c.pause(), 'pausing');
  assert.equal(c.resume(), 'running', 'a pending pause is withdrawn');
  assert.equal(await c.between(), true, 'and the run goes on without waiting');
  assert.equal(c.pause(), 'pausing');
  assert.equal(c.stop(), 'stopping');
  assert.equal(await c.between(), false);
  assert.equal(c.finish(), 'stopped');
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

/**
 * Pause / resume / stop for a training run that runs in the same thread as the message handler
 * (the Web Worker). The Trainer awaits {@link TrainControl.between} after every optimizer step (its
 * `betweenSteps` callback, web/engine/train.ts): it yields to the event loop (so `pause`/`stop`
 * messages are handled), waits while paused, and tells the run whether to go on. A pause asked for
 * mid-step is `pausing` until that step has finished and reported; only then, with the run actually
 * waiting, does the state become `paused`. Stopping ends the run at a step boundary, so the adapter
 * keeps every completed step and can still be used, saved or trained further.
 */
import type { TrainState } from './protocol.js';

export class TrainControl {
  private _state: TrainState = 'idle';
  private wake: (() => void) | null = null;
  private readonly listeners: ((s: TrainState) => void)[] = [];

  get state(): TrainState {
    return this._state;
  }

  /** Calls `fn` on every state change. */
  onChange(fn: (s: TrainState) => void): void {
    this.listeners.push(fn);
  }

  private set(s: TrainState): void {
    if (s === this._state) return;
    this._state = s;
    for (const l of this.listeners) l(s);
  }

  /** Marks a run as started; only one run at a time. Returns false when one is already active. */
  start(): boolean {
    if (this.active()) return false;
    this.set('running');
    return true;
  }

  /** True while a run is running, pausing, paused or stopping. */
  active(): boolean {
    return (
      this._state === 'running' ||
      this._state === 'pausing' ||
      this._state === 'paused' ||
      this._state === 'stopping'
    );
  }

  /** Requests a pause at the next step boundary (no-op unless running): `pausing` until the run waits. */
  pause(): TrainState {
    if (this._state === 'running') this.set('pausing');
    return this._state;
  }

  /** Continues a paused run (or withdraws a pause not yet reached). */
  resume(): TrainState {
    if (this._state === 'paused' || this._state === 'pausing') {
      this.set('running');
      this.release();
    }
    return this._state;
  }

  /** Requests the run to end at the next step boundary (also from pausing or paused). */
  stop(): TrainState {
    if (this._state === 'running' || this._state === 'pausing' || this._state === 'paused') {
      this.set('stopping');
      this.release();
    }
    return this._state;
  }

  /** Marks the run as finished: `stopped` when a stop was requested, else `done`. */
  finish(): TrainState {
    this.set(this._state === 'stopping' ? 'stopped' : 'done');
    return this._state;
  }

  /**
   * Called by the loop between steps; resolves true to continue, false to stop. A pending pause
   * becomes `paused` here, when the step before has completed and reported and the run waits.
   */
  async between(): Promise<boolean> {
    await new Promise<void>((r) => setTimeout(r, 0));
    if (this._state === 'pausing') this.set('paused');
    while (this._state === 'paused') {
      await new Promise<void>((r) => (this.wake = r));
    }
    return this._state === 'running';
  }

  private release(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

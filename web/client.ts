/**
 * The page's handle on the training worker: `call(type, payload)` returns a promise of the typed
 * reply (rejecting with a {@link WorkerError} that keeps the library error's name), and `on(listener)`
 * receives the worker's progress events.
 */
import type { FromWorker, Replies, Request, RequestType, WorkerEvent } from './protocol.js';

/** A library error raised inside the worker, re-thrown on the page with its original class name. */
export class WorkerError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(message);
    this.name = errorName;
  }
}

type Payload<T extends RequestType> = Omit<Extract<Request, { type: T }>, 'id' | 'type'>;

export class WorkerClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners: ((e: WorkerEvent) => void)[] = [];
  private stopped = false;

  constructor(private readonly worker: Worker) {
    worker.onmessage = (ev: MessageEvent<FromWorker>) => this.receive(ev.data);
    worker.onerror = (ev: ErrorEvent) => {
      const err = new WorkerError('WorkerError', `worker crashed: ${ev.message}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  /** Sends a request; `transfer` lists buffers to move rather than copy (picked file bytes). */
  call<T extends RequestType>(
    type: T,
    payload: Payload<T>,
    transfer: Transferable[] = [],
  ): Promise<Replies[T]> {
    if (this.stopped) {
      // A stopped worker never answers: fail at once rather than leave the caller waiting.
      return Promise.reject(
        new WorkerError('WorkerError', `the worker was stopped; reload the page (${type})`),
      );
    }
    const id = this.nextId++;
    const msg = { ...payload, id, type } as Request;
    return new Promise<Replies[T]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage(msg, transfer);
    });
  }

  /** Stops the worker; pending and later calls reject with a WorkerError. */
  terminate(): void {
    this.stopped = true;
    this.worker.terminate();
    const err = new WorkerError('WorkerError', 'the worker was stopped');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Subscribes to progress / ranks / state events. */
  on(listener: (e: WorkerEvent) => void): void {
    this.listeners.push(listener);
  }

  private receive(msg: FromWorker): void {
    if (msg.type === 'done' || msg.type === 'error') {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.type === 'done') p.resolve(msg.result);
      else p.reject(new WorkerError(msg.error.name, msg.error.message));
      return;
    }
    for (const l of this.listeners) l(msg);
  }
}

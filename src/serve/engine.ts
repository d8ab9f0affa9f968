/**
 * Continuous batching over one base model and many adapters. Requests wait in a bounded queue; up to
 * `maxActive` sequences decode together. Each loop turn admits waiting requests (one prefill each, its
 * KV cache cloned for n > 1 choices), then runs ONE decode step for every active sequence.
 *
 * On the native backend the sequences decode on the native engine (native_rows.ts): one addon call
 * per turn for all of them, each row with its own adapter applied unmerged. Otherwise, and for
 * adapters that engine does not cover, on tfjs: the LoRA
 * rows of all adapters (and base rows) in one mixed-adapter forward — one base GEMM per layer, each
 * adapter's delta on its own rows (tuners/lora/mixed_batch.ts) — and DoRA rows per adapter. Every
 * sequence keeps its own KV cache of its own length (models/ragged_cache.ts). Sampling is the
 * library's `sampleToken` with a per-choice seeded `Rng`, so a greedy row reproduces `generate`.
 *
 * @example
 * const engine = new Engine(store, { maxActive: 16, maxQueue: 64 });
 * const [choice] = await engine.submit({ promptIds, adapter, n: 1, maxTokens: 32, eos: [2],
 *   sampling: { temperature: 0 }, onToken: (c, id) => true, signal });
 */
import type { PreTrainedModel } from '../models/base.js';
import type { KVCache } from '../models/base.js';
import { sampleToken } from '../models/generate.js';
import { cloneKVCache, prefillStep, RaggedBatch } from '../models/ragged_cache.js';
import { NativeRows } from './native_rows.js';
import { forwardFor } from './tfjs_forward.js';
import { Rng } from '../util/rng.js';
import type { AdapterHandle, AdapterStore } from './adapters.js';
import { ApiError, toApiError } from './errors.js';
import { BATCH_BUCKETS, type Metrics } from './metrics.js';

export interface Sampling {
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Choice i samples with seed + i (choice 0 equals `generate` with this seed). */
  seed?: number;
}

export interface GenerationJob {
  promptIds: number[];
  adapter: AdapterHandle;
  n: number;
  maxTokens: number;
  eos: number[];
  sampling: Sampling;
  /** Called with every new token and its logits row; return false to end that choice (a stop string). */
  onToken(choice: number, id: number, logits: Float32Array): boolean;
  signal: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface ChoiceResult {
  finishReason: FinishReason;
  tokens: number;
}

export interface EngineOptions {
  /** Sequences decoding at once. */
  maxActive: number;
  /** Requests waiting beyond that (then 429). */
  maxQueue: number;
  metrics?: Metrics;
  /**
   * Positions per sequence (prompt + new tokens; the server's context length). Given, the engine
   * decodes on the native engine when the backend allows it; absent, always on tfjs.
   */
  maxSeq?: number;
}

interface Pending {
  job: GenerationJob;
  resolve(r: ChoiceResult[]): void;
  reject(e: unknown): void;
  results: ChoiceResult[];
  open: number;
  /** It did not fit the free slots when it arrived (counts against maxQueue). */
  waits: boolean;
}

interface Seq {
  p: Pending;
  choice: number;
  rng: Rng;
  /** The batch group it decodes in (see {@link groupKey}). */
  group: string;
  next: number;
  generated: number;
  done: boolean;
  /** Its row on the native engine, or null (a tfjs batch group). */
  row: number | null;
}

/** Rows of all LoRA adapters and the base share one group; each "solo" adapter (DoRA, …) has its own. */
function groupKey(h: AdapterHandle): string {
  return h.solo ? `solo:${h.internal}` : 'mixed';
}

export class Engine {
  private readonly queue: Pending[] = [];
  private active: Seq[] = [];
  /** The persistent batch cache of each group. */
  private readonly batches = new Map<string, RaggedBatch<Seq>>();
  private wake: (() => void) | undefined;
  private closing = false;
  private stopped = false;
  private readonly done: Promise<void>;
  private readonly native: NativeRows | null;
  /** 'native', or 'tfjs' with the reason the native engine is not used. */
  readonly decodeEngine: string;

  constructor(
    readonly store: AdapterStore,
    readonly opts: EngineOptions,
  ) {
    const m = opts.metrics;
    m?.gauge('lowrank_queue_depth', 'Requests waiting for a decoding slot').set(() => this.queue.length);
    m?.gauge('lowrank_active_sequences', 'Sequences decoding').set(() => this.active.length);
    const rows = opts.maxSeq ? NativeRows.open(store, opts.maxActive, opts.maxSeq) : 'no maxSeq given';
    this.native = typeof rows === 'string' ? null : rows;
    this.decodeEngine = typeof rows === 'string' ? `tfjs (${rows})` : 'native';
    this.done = this.loop();
  }

  get model(): PreTrainedModel {
    return this.store.base;
  }

  get queued(): number {
    return this.queue.length;
  }

  get running(): number {
    return this.active.length;
  }

  /**
   * Whether jobs of these choice counts would be taken now, in order: the ApiError they would get
   * (503 closing, 429 queue full), or null. A job that fits the free slots starts at the next loop
   * turn; the others wait, at most `maxQueue` of them. Lets a streaming request get its 429 as an
   * HTTP status before the event stream opens.
   */
  admissionError(ns: number[]): ApiError | null {
    if (this.closing)
      return new ApiError(
        503,
        'the server is shutting down',
        'service_unavailable_error',
        null,
        'shutting_down',
      );
    let free = this.opts.maxActive - this.active.length - this.queue.reduce((s, q) => s + q.job.n, 0);
    let waiting = this.queue.filter((q) => q.waits).length;
    for (const n of ns) {
      if (n > free && waiting >= this.opts.maxQueue) {
        return new ApiError(
          429,
          `too many requests waiting (queue limit ${this.opts.maxQueue}); retry later`,
          'rate_limit_error',
          null,
          'queue_full',
        );
      }
      if (n > free) waiting++;
      free -= n;
    }
    return null;
  }

  /** Queues a job; resolves with one result per choice. 429 when the queue is full, 503 when closing. */
  submit(job: GenerationJob): Promise<ChoiceResult[]> {
    const refused = this.admissionError([job.n]);
    if (refused) return Promise.reject(refused);
    const free = this.opts.maxActive - this.active.length - this.queue.reduce((s, q) => s + q.job.n, 0);
    const waits = job.n > free;
    return new Promise((resolve, reject) => {
      const p: Pending = { job, resolve, reject, results: [], open: job.n, waits };
      this.queue.push(p);
      job.signal.addEventListener('abort', () => this.kick(), { once: true });
      this.kick();
    });
  }

  private kick(): void {
    this.wake?.();
    this.wake = undefined;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.reap();
      while (this.queue.length > 0 && this.active.length + this.queue[0]!.job.n <= this.opts.maxActive) {
        await this.admit(this.queue.shift()!);
      }
      if (this.active.length === 0) {
        if (this.closing && this.queue.length === 0) break;
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      await this.decode();
      await new Promise((r) => setImmediate(r)); // let the HTTP side read and write
    }
  }

  /** Drops queued jobs whose client left, and finishes cancelled sequences. */
  private reap(): void {
    for (const p of this.queue.filter((q) => q.job.signal.aborted)) {
      this.queue.splice(this.queue.indexOf(p), 1);
      p.resolve(Array.from({ length: p.job.n }, () => ({ finishReason: 'cancelled', tokens: 0 })));
    }
    const gone = this.active.filter((a) => a.p.job.signal.aborted);
    for (const s of gone) this.finish(s, 'cancelled');
    for (const b of this.batches.values()) b.remove(gone);
  }

  private async admit(p: Pending): Promise<void> {
    const { job } = p;
    if (job.signal.aborted) {
      p.resolve(Array.from({ length: job.n }, () => ({ finishReason: 'cancelled', tokens: 0 })));
      return;
    }
    if (this.native && this.native.refusal(job.adapter) === null) return this.admitNative(p, this.native);
    let first: { logits: Float32Array; cache: KVCache };
    try {
      first = await prefillStep(forwardFor(this.store, [job.adapter]), job.promptIds);
    } catch (e) {
      p.reject(toApiError(e));
      return;
    }
    const seqs: Seq[] = [];
    const group = groupKey(job.adapter);
    let batch = this.batches.get(group);
    if (!batch) this.batches.set(group, (batch = new RaggedBatch<Seq>()));
    for (let c = 0; c < job.n; c++) {
      const s: Seq = {
        p,
        choice: c,
        rng: new Rng((job.sampling.seed ?? 0) + c),
        group,
        next: 0,
        generated: 0,
        done: false,
        row: null,
      };
      batch.add(s, c === job.n - 1 ? first.cache : cloneKVCache(first.cache));
      seqs.push(s);
      p.results.push({ finishReason: 'length', tokens: 0 });
    }
    this.active.push(...seqs);
    for (const s of seqs) this.accept(s, first.logits);
    batch.remove(seqs.filter((s) => s.done));
  }

  /** {@link admit} on the native engine: the prompt into a row, copied for the other choices. */
  private admitNative(p: Pending, native: NativeRows): void {
    const { job } = p;
    let first: { row: number; logits: Float32Array };
    try {
      first = native.prefill(job.promptIds, job.adapter);
    } catch (e) {
      p.reject(toApiError(e));
      return;
    }
    const seqs: Seq[] = Array.from({ length: job.n }, (_, c) => ({
      p,
      choice: c,
      rng: new Rng((job.sampling.seed ?? 0) + c),
      group: 'native',
      next: 0,
      generated: 0,
      done: false,
      row: c === 0 ? first.row : native.fork(first.row),
    }));
    seqs.forEach(() => p.results.push({ finishReason: 'length', tokens: 0 }));
    this.active.push(...seqs);
    for (const s of seqs) this.accept(s, first.logits);
  }

  /** Samples the next token of `s` from `logits`, hands it to the job, and finishes `s` if it ended. */
  private accept(s: Seq, logits: Float32Array): void {
    if (s.done) return; // cancelled while its step ran
    const { job } = s.p;
    const id = sampleToken(logits, job.sampling, s.rng);
    s.generated++;
    s.next = id;
    this.opts.metrics?.counter('lowrank_generated_tokens_total', 'Tokens generated').inc();
    let more: boolean;
    try {
      more = job.onToken(s.choice, id, logits);
    } catch {
      more = false;
    }
    if (job.eos.includes(id) || !more) this.finish(s, 'stop');
    else if (s.generated >= job.maxTokens) this.finish(s, 'length');
  }

  /** Ends `s` (its cache row is freed by the caller's `batch.remove`, or by {@link reap}). */
  private finish(s: Seq, reason: FinishReason): void {
    if (s.done) return;
    s.done = true;
    this.active.splice(this.active.indexOf(s), 1);
    if (s.row !== null) this.native?.release(s.row);
    s.p.results[s.choice] = { finishReason: reason, tokens: s.generated };
    if (--s.p.open === 0) s.p.resolve(s.p.results);
  }

  /** One decode step for every active sequence, one forward per batch group. */
  private async decode(): Promise<void> {
    this.opts.metrics
      ?.histogram('lowrank_batch_size', 'Sequences per decode step', BATCH_BUCKETS)
      .observe(this.active.length);
    const steps = this.opts.metrics?.counter(
      'lowrank_decode_rows_total',
      'Sequence steps decoded, by engine',
    );
    const nat = this.active.filter((s) => s.row !== null);
    if (this.native && nat.length > 0) {
      steps?.inc({ engine: 'native' }, nat.length);
      let logits: Float32Array[];
      try {
        const handles = nat.map((s) => s.p.job.adapter);
        logits = this.native.step(
          nat.map((s) => s.row!),
          nat.map((s) => s.next),
          handles,
        );
      } catch (e) {
        for (const s of nat) {
          s.done = true;
          this.active.splice(this.active.indexOf(s), 1);
          this.native.release(s.row!);
          s.p.reject(toApiError(e));
        }
        logits = [];
      }
      nat.forEach((s, i) => logits[i] && this.accept(s, logits[i]));
    }
    for (const [key, batch] of this.batches) {
      if (batch.size === 0) {
        this.batches.delete(key);
        continue;
      }
      const rows = [...batch.members];
      steps?.inc({ engine: 'tfjs' }, rows.length);
      let logits: Float32Array[];
      try {
        logits = await batch.step(
          forwardFor(
            this.store,
            rows.map((s) => s.p.job.adapter),
          ),
          rows.map((s) => s.next),
        );
      } catch (e) {
        // this group's caches are unusable: fail its jobs, keep serving the other groups
        batch.dispose();
        this.batches.delete(key);
        for (const s of rows) {
          s.done = true;
          this.active.splice(this.active.indexOf(s), 1);
          s.p.reject(toApiError(e));
        }
        continue;
      }
      rows.forEach((s, i) => this.accept(s, logits[i]!));
      batch.remove(rows.filter((s) => s.done));
    }
  }

  /**
   * Stops taking jobs: queued ones get 503, running ones may finish for `graceMs`, then are cancelled.
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    for (const p of this.queue.splice(0)) {
      p.reject(
        new ApiError(503, 'the server is shutting down', 'service_unavailable_error', null, 'shutting_down'),
      );
    }
    const deadline = Date.now() + graceMs;
    while (this.active.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const s of [...this.active]) this.finish(s, 'cancelled');
    this.stopped = true;
    this.kick();
    await this.done; // the loop ends after its current step
    for (const b of this.batches.values()) b.dispose();
    this.batches.clear();
    this.native?.dispose();
  }
}

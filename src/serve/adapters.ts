/**
 * The adapter cache of the server: PEFT folders under one adapters directory, loaded on first use into
 * ONE `PeftModel` over the shared base (never merged into it), kept in an LRU bounded by bytes, and
 * reloaded when their files change. Requests pin the adapter they decode with; only unpinned adapters
 * are evicted, and a changed or unloaded adapter is dropped once its last request finishes.
 *
 * Names are checked against the folder: `[A-Za-z0-9][A-Za-z0-9._-]*` without `..`, and the real path
 * (symlinks resolved) must stay inside the real adapters directory.
 *
 * @example
 * const store = new AdapterStore(base, { dir: 'adapters', maxBytes: 64 << 20 });
 * const h = await store.acquire('shakespeare'); // loads on first use, pins
 * … decode rows with adapter h.internal …
 * h.release();
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PreTrainedModel } from '../models/base.js';
import { PeftModel } from '../tuners/peft_model.js';
import { readAdapterConfigText, readAdapterWeights } from '../tuners/base/adapter_files.js';
import { disposeAll } from '../tensor/memory.js';
import { setWarningHandler } from '../tuners/base/warnings.js';
import { ConfigError } from '../errors.js';
import { ApiError, toApiError } from './errors.js';
import { adapterForServing } from './adapter_files.js';
import { LoraLinear, type LoraConfig } from '../tuners/lora/index.js';
import type { Metrics } from './metrics.js';

/** The request `model` name that means "no adapter". */
export const BASE_MODEL_NAME = 'base';
const NAME_RULE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const BYTES_PER_FLOAT = 4;

/** What a decoding row needs to know about its adapter; `release()` unpins it (once). */
export interface AdapterHandle {
  /** Public name (`base` or the folder name). */
  readonly name: string;
  /** Name inside the PeftModel, or null for the base model. */
  readonly internal: string | null;
  /**
   * Decodes in its own group (setAdapter + forward) instead of the shared mixed-adapter batch: DoRA
   * (its norm is per adapter; PEFT rejects it in mixed batches too), adapters with `modules_to_save`
   * copies, and LoRA on non-linear layers (embeddings), which mixed batches do not route per row.
   */
  readonly solo: boolean;
  /** The adapter has `modules_to_save` copies (the native rows cannot run it; see native_rows.ts). */
  readonly copies: boolean;
  release(): void;
}

interface Entry {
  name: string;
  internal: string;
  fingerprint: string;
  bytes: number;
  pins: number;
  lastUsed: number;
  solo: boolean;
  copies: boolean;
  /** Replaced by a newer version or unloaded: dropped when the last pin goes. */
  retired: boolean;
}

export interface AdapterStoreOptions {
  /** The adapters folder (absent: only the base model is served). */
  dir?: string | undefined;
  /** Bytes of adapter weights kept loaded (f32). */
  maxBytes: number;
  metrics?: Metrics;
  log?: (obj: Record<string, unknown>, msg: string) => void;
}

export class AdapterStore {
  /** The PeftModel holding every loaded adapter; created with the first one. */
  peft: PeftModel | undefined;
  private readonly entries = new Map<string, Entry>();
  private readonly retired = new Set<Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private counter = 0;
  private clock = 0;

  constructor(
    readonly base: PreTrainedModel,
    readonly opts: AdapterStoreOptions,
  ) {}

  /** Bytes of adapter weights currently loaded (retired ones included until dropped). */
  get bytes(): number {
    let b = 0;
    for (const e of [...this.entries.values(), ...this.retired]) b += e.bytes;
    return b;
  }

  /** Public names of the loaded adapters. */
  loaded(): string[] {
    return [...this.entries.keys()].sort();
  }

  /** Adapter names available in the folder (subfolders with an adapter_config.json), sorted. */
  async list(): Promise<string[]> {
    if (!this.opts.dir) return [];
    const names = await fs.readdir(this.opts.dir).catch(() => [] as string[]);
    const ok: string[] = [];
    for (const n of names.sort()) {
      if (n === BASE_MODEL_NAME) continue;
      try {
        await this.folderOf(n);
        ok.push(n);
      } catch {
        // not an adapter folder (or escapes the directory): not listed
      }
    }
    return ok;
  }

  /** The real folder of adapter `name`, or a 404 ApiError (bad name, escape, no folder). */
  async folderOf(name: string): Promise<string> {
    const notFound = (why: string) =>
      new ApiError(
        404,
        `The model "${name}" does not exist: ${why}. GET /v1/models lists the base and every adapter.`,
        'invalid_request_error',
        'model',
        'model_not_found',
      );
    if (!NAME_RULE.test(name) || name.includes('..'))
      throw notFound('adapter names are letters, digits, ".", "_" and "-" and name a folder');
    if (!this.opts.dir) throw notFound('the server was started without an adapters folder');
    const root = await fs.realpath(this.opts.dir);
    let real: string;
    try {
      real = await fs.realpath(path.join(root, name));
    } catch {
      throw notFound(`no folder "${name}" in the adapters folder`);
    }
    if (!real.startsWith(root + path.sep)) throw notFound('the folder resolves outside the adapters folder');
    const st = await fs.stat(path.join(real, 'adapter_config.json')).catch(() => null);
    if (!st?.isFile()) throw notFound(`the folder "${name}" has no adapter_config.json`);
    return real;
  }

  /** Size and mtime of the adapter's files: a change means "reload". */
  private async fingerprint(dir: string): Promise<string> {
    const parts = await Promise.all(
      ['adapter_config.json', 'adapter_model.safetensors'].map(async (f) => {
        const s = await fs.stat(path.join(dir, f)).catch(() => null);
        return s ? `${s.size}:${s.mtimeMs}` : '-';
      }),
    );
    return parts.join('|');
  }

  /**
   * Pins adapter `name` (loading it on a miss, reloading it when its files changed) and returns the
   * handle rows decode with. `base` needs no adapter. Errors are ApiErrors (404 unknown, 422 broken
   * folder, 429 cache full of pinned adapters).
   */
  async acquire(name: string): Promise<AdapterHandle> {
    if (name === BASE_MODEL_NAME)
      return { name, internal: null, solo: false, copies: false, release: () => {} };
    const dir = await this.folderOf(name);
    const fp = await this.fingerprint(dir);
    let e = this.entries.get(name);
    if (e && e.fingerprint !== fp) {
      this.retire(e);
      e = undefined;
    }
    if (e) this.opts.metrics?.counter('lowrank_adapter_cache_hits_total', 'Adapter cache hits').inc();
    else e = await this.loadOnce(name, dir, fp);
    e.pins++;
    e.lastUsed = ++this.clock;
    let released = false;
    const entry = e;
    return {
      name,
      internal: entry.internal,
      solo: entry.solo,
      copies: entry.copies,
      release: () => {
        if (released) return;
        released = true;
        entry.pins--;
        if (entry.retired && entry.pins === 0) this.drop(entry);
      },
    };
  }

  /** Loads `name` now (POST /v1/adapters/load); returns its size in bytes. */
  async load(name: string): Promise<number> {
    const h = await this.acquire(name);
    h.release();
    return this.entries.get(name)?.bytes ?? 0;
  }

  /** Unloads `name` (POST /v1/adapters/unload): now, or when its running requests finish. */
  unload(name: string): boolean {
    const e = this.entries.get(name);
    if (!e) return false;
    this.retire(e);
    return true;
  }

  private retire(e: Entry): void {
    this.entries.delete(e.name);
    e.retired = true;
    if (e.pins === 0) this.drop(e);
    else this.retired.add(e);
  }

  private drop(e: Entry): void {
    this.retired.delete(e);
    // the "was active and is deleted" notice is expected here (DoRA rows switch the active adapter)
    const restore = setWarningHandler(() => {});
    try {
      this.peft?.deleteAdapter(e.internal);
      // the last adapter gone: give the base its own layers back (the next load wraps it again)
      if (this.peft && this.peft.peftConfig.size === 0) {
        this.peft.unload();
        this.peft = undefined;
      }
    } finally {
      restore();
    }
    this.opts.log?.({ adapter: e.name, internal: e.internal, bytes: e.bytes }, 'adapter unloaded');
  }

  private loadOnce(name: string, dir: string, fp: string): Promise<Entry> {
    const key = `${name}\0${fp}`;
    let p = this.loading.get(key);
    if (!p) {
      p = this.loadEntry(name, dir, fp).finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }

  private async loadEntry(name: string, dir: string, fp: string): Promise<Entry> {
    this.opts.metrics?.counter('lowrank_adapter_cache_misses_total', 'Adapter cache misses (loads)').inc();
    const internal = `adapter_${++this.counter}`;
    const t0 = performance.now();
    let loaded;
    try {
      loaded = await adapterForServing(dir, await readAdapterConfigText(dir), () => readAdapterWeights(dir));
    } catch (e) {
      throw toApiError(e, { adapter: name });
    }
    const { config, weights } = loaded;
    try {
      const bytes = [...weights.values()].reduce((s, t) => s + t.size * BYTES_PER_FLOAT, 0);
      if (bytes > this.opts.maxBytes) {
        throw toApiError(
          new ConfigError(
            `adapter "${name}"`,
            `needs ${bytes} bytes, more than the whole adapter cache`,
            this.opts.maxBytes,
            'raise --adapter-cache-mb',
          ),
          { adapter: name },
        );
      }
      this.makeRoom(bytes);
      try {
        if (!this.peft) this.peft = new PeftModel(this.base, config, internal);
        else this.peft.addAdapter(internal, config);
        try {
          this.peft.base_model.loadAdapterStateDict(internal, weights);
        } catch (e) {
          this.peft.deleteAdapter(internal);
          throw e;
        }
      } catch (e) {
        throw toApiError(e, { adapter: name });
      }
      this.peft.requiresGrad(false);
      this.peft.eval();
      const entry: Entry = {
        name,
        internal,
        fingerprint: fp,
        bytes,
        pins: 0,
        lastUsed: ++this.clock,
        solo: this.needsOwnGroup(internal, config),
        copies: (config.modulesToSave ?? []).length > 0,
        retired: false,
      };
      const old = this.entries.get(name);
      if (old) this.retire(old);
      this.entries.set(name, entry);
      this.opts.log?.(
        { adapter: name, internal, bytes, ms: Math.round(performance.now() - t0) },
        'adapter loaded',
      );
      return entry;
    } finally {
      disposeAll(weights);
    }
  }

  private needsOwnGroup(internal: string, config: LoraConfig): boolean {
    if (config.useDora || (config.modulesToSave ?? []).length > 0) return true;
    return this.peft!.base_model.tunerLayers().some(
      ([, l]) => l.adapterNames().includes(internal) && !(l instanceof LoraLinear),
    );
  }

  /** Evicts unpinned adapters, least recently used first, until `bytes` more fit; else 429. */
  private makeRoom(bytes: number): void {
    const idle = [...this.entries.values()]
      .filter((e) => e.pins === 0)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    while (this.bytes + bytes > this.opts.maxBytes) {
      const victim = idle.shift();
      if (!victim) {
        throw new ApiError(
          429,
          `the adapter cache (${this.opts.maxBytes} bytes) is full of adapters in use; retry shortly`,
          'rate_limit_error',
          'model',
          'adapter_cache_full',
        );
      }
      this.opts.metrics
        ?.counter('lowrank_adapter_cache_evictions_total', 'Adapters evicted from the cache')
        .inc();
      this.retire(victim);
    }
  }

  /** Unloads every adapter (server shutdown). */
  dispose(): void {
    for (const e of [...this.entries.values()]) this.retire(e);
    for (const e of [...this.retired]) this.drop(e);
  }
}

/**
 * Backend choice for the whole library (docs/design.md "Backends"): `auto` picks the fastest backend that
 * loads (native → wasm → cpu) and says which; an explicitly named backend that cannot run throws a typed
 * error with the reason. Importing this module (tf.ts does) registers `native` as tfjs's default
 * when the addon is built, and silences the cpu backend's "install tfjs-node" banner.
 */
import { tfCore as tfc } from './tfjs.js';
import { availableParallelism } from 'node:os';
import { ConfigError, NotSupportedError } from '../errors.js';
import { BACKENDS, type BackendName, type BackendReport, type BackendInfo } from './backend_types.js';
import { addonError, loadAddon } from './native/addon.js';
import { NATIVE_BACKEND, QuietCpuBackend, registerNativeBackend } from './native/register.js';
import { initWasmBackend } from './backend_wasm.js';

export { BACKENDS, type BackendName, type BackendReport, type BackendInfo } from './backend_types.js';

/** Threads for native kernels: option, else LOWRANK_THREADS, else every core. */
function resolveThreads(threads?: number): number {
  const fromEnv = process.env.LOWRANK_THREADS;
  const n = threads ?? (fromEnv ? Number(fromEnv) : availableParallelism());
  if (!Number.isInteger(n) || n < 1)
    throw new ConfigError(
      'threads (LOWRANK_THREADS)',
      'must be a positive integer',
      fromEnv ?? threads,
      'e.g. LOWRANK_THREADS=2',
    );
  return n;
}

let threadCount = 1;

/**
 * Sets the native backend's thread count (OpenBLAS and OpenMP). No effect without the addon.
 * @example setThreads(1); // single-threaded, reproducible timing
 */
export function setThreads(threads?: number): number {
  threadCount = resolveThreads(threads);
  loadAddon()?.setThreads(threadCount);
  return threadCount;
}

// Quiet cpu backend under the usual name (same kernels: they are registered by backend name).
// Skipped if something already initialised cpu (its tensors would go with the old instance).
if (!('cpu' in (tfc.engine() as unknown as { registry: Record<string, unknown> }).registry)) {
  tfc.removeBackend('cpu');
  tfc.registerBackend('cpu', () => new QuietCpuBackend(), 1);
}
if (registerNativeBackend(3)) setThreads();

async function trySet(name: string): Promise<string | undefined> {
  try {
    const ok = await tfc.setBackend(name);
    return ok ? undefined : `tfjs could not initialise backend "${name}"`;
  } catch (e) {
    return (e as Error).message;
  }
}

async function tryOne(name: Exclude<BackendName, 'auto'>): Promise<string | undefined> {
  switch (name) {
    case 'native':
      if (!registerNativeBackend(3)) return `native addon unavailable: ${addonError()}`;
      return trySet(NATIVE_BACKEND);
    case 'wasm':
      return (await initWasmBackend()) ?? trySet('wasm');
    case 'cpu':
      return trySet('cpu');
    case 'tensorflow':
      return '@tensorflow/tfjs-node is not a dependency (its install downloads libtensorflow); use native';
    case 'webgpu':
      return 'needs a browser with WebGPU (@tensorflow/tfjs-backend-webgpu is not bundled for Node)';
    case 'webgl':
      return typeof document === 'undefined' ? 'needs a browser (no WebGL in Node)' : trySet('webgl');
  }
}

/**
 * Selects the compute backend: `auto` (default: env LOWRANK_BACKEND, else auto) tries native,
 * wasm, cpu in that order. Throws ConfigError for an unknown name and NotSupportedError when the
 * named backend cannot run here (with the reason).
 *
 * @example
 * const report = await initBackend('auto'); console.log(report.backend); // 'native'
 */
export async function initBackend(
  name: string = process.env.LOWRANK_BACKEND ?? 'auto',
  opts: { threads?: number } = {},
): Promise<BackendReport> {
  if (!(BACKENDS as readonly string[]).includes(name))
    throw new ConfigError(
      'backend',
      `must be one of ${BACKENDS.join(', ')}`,
      name,
      'pick one of those names',
    );
  if (loadAddon()) setThreads(opts.threads);
  const order: Exclude<BackendName, 'auto'>[] =
    name === 'auto' ? ['native', 'wasm', 'cpu'] : [name as Exclude<BackendName, 'auto'>];
  const tried: BackendReport['tried'] = [];
  for (const candidate of order) {
    const reason = await tryOne(candidate);
    tried.push(reason === undefined ? { name: candidate, ok: true } : { name: candidate, ok: false, reason });
    if (reason === undefined) return { backend: tfc.getBackend(), tried };
  }
  const why = tried.map((t) => `${t.name}: ${t.reason}`).join('; ');
  throw new NotSupportedError(
    'initBackend',
    `backend "${name}" here (${why})`,
    'choose another backend, e.g. cpu',
  );
}

/**
 * What `lowrank info` prints about compute.
 * @example console.log(backendInfo()); // { backend: 'native', addonLoaded: true, blas: 'OpenBLAS 0.3.21 …', threads: 2, … }
 */
export function backendInfo(): BackendInfo {
  const addon = loadAddon();
  const native = addon?.info();
  const err = addonError();
  tfc.backend(); // initialises the default backend if nothing has yet
  return {
    backend: tfc.getBackend(),
    addonLoaded: addon !== null,
    ...(err !== undefined ? { addonError: err } : {}),
    blas: native ? native.blas : null,
    threads: native ? native.threads : 1,
    version: LOWRANK_VERSION,
    tfjsVersion: tfc.version_core,
  };
}

/** Keep in step with package.json (checked by backend.test.ts). */
export const LOWRANK_VERSION = '0.1.0';

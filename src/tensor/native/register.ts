/**
 * Registers the tfjs backend `native` (docs/design.md "Backends"): a MathBackendCPU subclass whose tensors
 * live in the CPU backend's TypedArrays, given every kernel of tfjs-backend-cpu under its own name, with
 * the hot kernels replaced by the addon's. Gradients are registered per kernel name, so every
 * gradient that calls an overridden kernel speeds up too.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tfCore as tfc, tfCpu } from '../tfjs.js';
import { loadAddon, type NativeAddon } from './addon.js';
import type { KernelArgs, NativeKernelSpec, TensorInfo } from './kernel.js';
import { matmulKernels } from './matmul.js';
import { elementwiseKernels } from './elementwise.js';
import { reduceKernels } from './reduce.js';
import { layoutKernels } from './layout.js';
import { fusedKernels } from './fused_kernels.js';
import { addNormKernels } from './add_norm_kernels.js';
import { adaloraKernels } from './adalora_kernels.js';
import { adapterKernels } from './adapter_kernels.js';
import { attentionKernels } from './attention_kernels.js';
import { profiled } from './profile.js';
import { BufferPool, DEFAULT_POOL_MB } from './pool.js';

export const NATIVE_BACKEND = 'native';

/** The CPU backend without the "install tfjs-node" banner (which does not apply to lowrank). */
export class QuietCpuBackend extends tfCpu.MathBackendCPU {
  constructor() {
    super();
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }
}

type DataId = object;
type Data = { values?: unknown };

/**
 * The `native` backend instance: the CPU backend's storage plus a {@link BufferPool} that recycles
 * kernel outputs (LOWRANK_POOL_MB caps the resident free memory kept, default {@link DEFAULT_POOL_MB}).
 */
export class NativeBackend extends QuietCpuBackend {
  readonly pool = new BufferPool(Number(process.env.LOWRANK_POOL_MB ?? DEFAULT_POOL_MB) * 2 ** 20);

  override write(
    values: Parameters<MathBackendCPU['write']>[0],
    shape: number[],
    dtype: TfCore.DataType,
  ): DataId {
    const id = super.write(values, shape, dtype);
    this.pool.retain(values);
    return id;
  }

  override move(
    dataId: DataId,
    values: Parameters<MathBackendCPU['move']>[1],
    shape: number[],
    dtype: TfCore.DataType,
    refCount: number,
  ): void {
    super.move(dataId, values, shape, dtype, refCount);
    this.pool.retain(values);
  }

  override disposeData(dataId: DataId, force?: boolean): boolean {
    const values = this.data.has(dataId) ? (this.data.get(dataId) as Data).values : undefined;
    const done = super.disposeData(dataId, force);
    if (values !== undefined && !this.data.has(dataId)) this.pool.release(values);
    return done;
  }

  override readSync(dataId: DataId): ReturnType<MathBackendCPU['readSync']> {
    const out = super.readSync(dataId);
    // The caller may keep the live array (dataSync, arraySync, data()): it must never be reused.
    if (this.data.has(dataId)) this.pool.escape((this.data.get(dataId) as Data).values);
    this.pool.escape(out);
    return out;
  }
}

/** Every native kernel override, by tfjs kernel name (plus lowrank's fused kernels). */
export function nativeKernelSpecs(): NativeKernelSpec[] {
  return [
    ...matmulKernels,
    ...elementwiseKernels,
    ...reduceKernels,
    ...layoutKernels,
    ...fusedKernels,
    ...adaloraKernels,
    ...attentionKernels,
    ...addNormKernels,
    ...adapterKernels,
  ];
}

type KernelFunc = (args: KernelArgs) => TensorInfo | TensorInfo[];

function override(spec: NativeKernelSpec, addon: NativeAddon, fallback: KernelFunc | undefined): KernelFunc {
  return (args) => {
    const result = spec.run(args, addon);
    if (result !== null) return result;
    if (!fallback) throw new Error(`internal: native kernel ${spec.name} declined and has no cpu fallback`);
    return fallback(args);
  };
}

let registered = false;

/**
 * Registers backend `native` (once) when the addon loads; returns false otherwise. `priority`
 * above the cpu backend's 1 makes it tfjs's default.
 *
 * @example
 * if (registerNativeBackend(3)) await tf.setBackend('native');
 */
export function registerNativeBackend(priority = 3): boolean {
  if (registered) return true;
  const addon = loadAddon();
  if (!addon) return false;
  tfc.registerBackend(NATIVE_BACKEND, () => new NativeBackend(), priority);
  const cpuKernels = new Map<string, KernelFunc>();
  for (const config of tfc.getKernelsForBackend('cpu')) {
    cpuKernels.set(config.kernelName, config.kernelFunc as unknown as KernelFunc);
    const kernelFunc = profiled(config.kernelName, config.kernelFunc, false);
    tfc.registerKernel({ ...config, kernelFunc, backendName: NATIVE_BACKEND });
  }
  for (const spec of nativeKernelSpecs()) {
    const fallback = cpuKernels.get(spec.name);
    if (fallback) tfc.unregisterKernel(spec.name, NATIVE_BACKEND);
    const func = profiled(spec.name, override(spec, addon, fallback));
    tfc.registerKernel({
      kernelName: spec.name,
      backendName: NATIVE_BACKEND,
      kernelFunc: func as unknown as TfCore.KernelFunc,
    });
  }
  registered = true;
  return true;
}

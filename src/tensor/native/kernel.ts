/**
 * Plumbing shared by the native kernels: the kernel signature, typed access to the TypedArrays the
 * CPU backend keeps per tensor, and output allocation. A native kernel returns `null` when its
 * inputs are outside what it handles (another dtype, an exotic attribute); the registrar then runs
 * tfjs-backend-cpu's kernel on the same backend instead (see backend.ts).
 */
import type * as tfc from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from './addon.js';
import type { BufferPool } from './pool.js';

export type TensorInfo = tfc.TensorInfo;
export type Values = Float32Array | Int32Array | Uint8Array;

export interface KernelArgs {
  inputs: Record<string, TensorInfo | undefined> & { [i: number]: TensorInfo };
  backend: MathBackendCPU;
  attrs?: Record<string, unknown>;
}

export type NativeKernel = (args: KernelArgs, addon: NativeAddon) => TensorInfo | TensorInfo[] | null;

/** One override: kernel name → native implementation (null result = use the cpu kernel). */
export interface NativeKernelSpec {
  name: string;
  run: NativeKernel;
}

/** The backing TypedArray of a tensor (never copied). */
export function vals(backend: MathBackendCPU, t: TensorInfo): Values {
  return backend.data.get(t.dataId).values as Values;
}

/** True when `t` is float32 and stored as a Float32Array (the only layout native math takes). */
export function isF32(backend: MathBackendCPU, t: TensorInfo | undefined): t is TensorInfo {
  return t != null && t.dtype === 'float32' && backend.data.get(t.dataId).values instanceof Float32Array;
}

export function f32(backend: MathBackendCPU, t: TensorInfo): Float32Array {
  return backend.data.get(t.dataId).values as Float32Array;
}

/** Element width in bytes of a dtype the copy kernels move, or 0 when they do not handle it. */
export function elemBytes(backend: MathBackendCPU, t: TensorInfo): 0 | 1 | 4 {
  const v = backend.data.get(t.dataId).values;
  if (v instanceof Float32Array || v instanceof Int32Array) return 4;
  if (v instanceof Uint8Array && t.dtype === 'bool') return 1;
  return 0;
}

interface Pooled {
  pool?: BufferPool;
}

/**
 * An output array for a tensor of `dtype` from the backend's recycling pool: contents are
 * arbitrary, the kernel must write every element. Only for arrays that become tensor data.
 */
export function alloc(backend: MathBackendCPU, dtype: string, n: number): Values {
  const pool = (backend as unknown as Pooled).pool;
  const ctor = dtype === 'int32' ? Int32Array : dtype === 'bool' ? Uint8Array : Float32Array;
  return pool ? pool.take(ctor, n) : new ctor(n);
}

/** {@link alloc} for float32. */
export function allocF32(backend: MathBackendCPU, n: number): Float32Array {
  return alloc(backend, 'float32', n) as Float32Array;
}

/** Registers `values` as a new tensor of the backend (ownership passes to tfjs). */
export function output(backend: MathBackendCPU, shape: number[], dtype: string, values: Values): TensorInfo {
  return backend.makeTensorInfo(shape, dtype as tfc.DataType, values);
}

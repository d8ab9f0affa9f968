/**
 * The native addon's 4-bit dequantisation kernel (native/src/dequant.cc) as a {@link DequantKernel}:
 * it decodes the packed codes, and under double quantisation the 8-bit absmax codes too, in one
 * OpenMP pass over the blocks, bit-exact with the TypedArray loop of `blockwise.ts`.
 */
import { loadAddon, type NativeAddon } from '../native/addon.js';
import { ShapeError } from '../../errors.js';
import { absmaxOf, type Quantized4bit } from './blockwise.js';

/**
 * Fills `out` (length `q.numel`) with the dequantised values of `q`.
 *
 * @example const k = nativeDequantKernel(); if (k) k(q, new Float32Array(q.numel));
 */
export type DequantKernel = (q: Quantized4bit, out: Float32Array) => void;

/** The addon function (dequant.cc): absmax null means double-quantised (nested arrays given). */
type NativeDequantize4bit = (
  packed: Uint8Array,
  code: Float32Array,
  absmax: Float32Array | null,
  nestedQ: Uint8Array | null,
  nestedAbsmax: Float32Array | null,
  nestedCode: Float32Array | null,
  offset: number,
  blocksize: number,
  nestedBlocksize: number,
  out: Float32Array,
) => void;

/**
 * The native kernel, or null when the addon is not loaded or predates dequant.cc (an addon built
 * from an older checkout): callers then keep the TypedArray loop.
 */
export function nativeDequantKernel(): DequantKernel | null {
  const addon = loadAddon() as (NativeAddon & { dequantize4bit?: NativeDequantize4bit }) | null;
  const fn = addon?.dequantize4bit;
  if (!fn) return null;
  return (q, out) => {
    if (out.length !== q.numel)
      throw new ShapeError('dequantize4bit (native)', `out must hold ${q.numel} elements`, out.length);
    const n = q.nested;
    if (!n) absmaxOf(q); // throws the typed error when the tensor has neither absmax form
    fn(
      q.packed,
      q.code,
      n ? null : q.absmax,
      n?.q ?? null,
      n?.absmax ?? null,
      n?.code ?? null,
      n?.offset ?? 0,
      q.blocksize,
      n?.blocksize ?? 0,
      out,
    );
  };
}

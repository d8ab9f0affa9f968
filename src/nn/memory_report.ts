/**
 * Bytes a model holds, by category (trainable, frozen dense, frozen 4-bit and its f32 equivalent,
 * buffers): what `printTrainableParameters`, `lowrank info --model` and the memory benchmark report.
 */
import type { Module } from './module.js';
import { Linear4bit } from './linear4bit.js';
import { HalfEmbedding } from './half_embedding.js';

/** Memory by category for a model (bytes), as `printTrainableParameters` / `lowrank info` report it. */
export interface MemoryByCategory {
  /** Trainable parameters (f32). */
  trainable: number;
  /** Frozen dense parameters (embeddings, norms, heads, frozen biases), f32. */
  frozenDense: number;
  /** 4-bit weights (codes + quantisation constants). */
  frozenQuantized: number;
  /** What the 4-bit weights would take as f32. */
  frozenQuantizedFp32: number;
  /** Frozen float16 storage (embeddings and heads tied to them, `embeddingDtype: 'float16'`). */
  frozenHalf: number;
  /** Buffers (non-trainable state such as AdaLoRA's ranknum). */
  buffers: number;
}

/**
 * Bytes held by `model`'s tensors by category. Shared (tied) parameters are counted once.
 *
 * @example
 * const m = memoryByCategory(model);
 * m.frozenQuantized / m.frozenQuantizedFp32; // ≈ 0.129 for NF4 + double quantisation
 */
export function memoryByCategory(model: Module): MemoryByCategory {
  const out: MemoryByCategory = {
    trainable: 0,
    frozenDense: 0,
    frozenQuantized: 0,
    frozenQuantizedFp32: 0,
    frozenHalf: 0,
    buffers: 0,
  };
  for (const [, p] of model.namedParameters()) {
    const bytes = p.size * bytesPerElement(p.dtype);
    if (p.trainable) out.trainable += bytes;
    else out.frozenDense += bytes;
  }
  for (const [, b] of model.namedBuffers()) out.buffers += b.size * bytesPerElement(b.dtype);
  for (const [, m] of model.namedModules()) {
    if (m instanceof HalfEmbedding) out.frozenHalf += m.bytesHeld(); // a tied head shares it: counted once
    if (!(m instanceof Linear4bit)) continue;
    const held = m.bytesHeld();
    out.frozenQuantized += held.weight;
    out.frozenQuantizedFp32 += held.weightFp32;
  }
  return out;
}

function bytesPerElement(dtype: string): number {
  return dtype === 'bool' ? 1 : 4;
}

/** All bytes of {@link MemoryByCategory} (the f32-equivalent size is a comparison, not held). */
export function totalBytes(m: MemoryByCategory): number {
  return m.trainable + m.frozenDense + m.frozenQuantized + m.frozenHalf + m.buffers;
}

/** `1,234,567 B (1.18 MiB)`: exact bytes plus a binary-unit size. */
export function formatBytes(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB'];
  let v = bytes;
  let unit = '';
  for (const u of units) {
    if (v < 1024) break;
    v /= 1024;
    unit = u;
  }
  const exact = `${bytes.toLocaleString('en-US')} B`;
  return unit ? `${exact} (${v.toFixed(2)} ${unit})` : exact;
}

/**
 * Rows `[category, bytes]` of a memory report; the 4-bit row carries its f32-equivalent size and
 * ratio (QLoRA paper §3 storage arithmetic: ≈ 0.129 for NF4 + double quantisation, 0.141 without).
 *
 * @example memoryRows(memoryByCategory(model)).map((r) => r.join(': ')).join('\n')
 */
export function memoryRows(m: MemoryByCategory): [string, string][] {
  const q4 =
    m.frozenQuantizedFp32 > 0
      ? `${formatBytes(m.frozenQuantized)}; as f32 ${formatBytes(m.frozenQuantizedFp32)}; ratio ${(m.frozenQuantized / m.frozenQuantizedFp32).toFixed(4)}`
      : formatBytes(0);
  return [
    ['trainable', formatBytes(m.trainable)],
    ['frozen dense', formatBytes(m.frozenDense)],
    ['frozen 4-bit (packed)', q4],
    ...(m.frozenHalf > 0 ? [['frozen float16', formatBytes(m.frozenHalf)] as [string, string]] : []),
    ['buffers', formatBytes(m.buffers)],
    ['total held', formatBytes(totalBytes(m))],
  ];
}

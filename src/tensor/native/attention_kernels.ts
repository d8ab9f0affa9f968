/**
 * Fused multi-head attention kernels (native/src/attention.cc), run by `multiHeadAttention` in
 * src/tensor/ops/attention.ts: q [B, Tq, heads·d], k/v [B, Tk, heads·d] in the projections' layout
 * (no head split/merge transposes).
 *
 * - `LowrankAttention` {q, k, v, mask?} attrs {heads, scale} → [out [B, Tq, heads·d], probs [B, heads, Tq, Tk]]
 * - `LowrankAttentionGrad` {dy, q, k, v, probs} attrs {heads, scale} → [dq, dk, dv]
 */
import { allocF32, f32, output, type NativeKernelSpec, type TensorInfo } from './kernel.js';
import { broadcastStrides, int32, sizeOf } from './shape.js';

export const ATTENTION_KERNELS = {
  forward: 'LowrankAttention',
  backward: 'LowrankAttentionGrad',
} as const;

/** [B, Tq, Tk, heads, d] from q [B, Tq, W], k [B, Tk, W] and the head count (W = heads·d). */
function dims(q: TensorInfo, k: TensorInfo, heads: number): [number, number, number, number, number] | null {
  if (q.shape.length !== 3 || k.shape.length !== 3 || !(heads > 0)) return null;
  const [b, tq, w] = q.shape as [number, number, number];
  if (w % heads !== 0 || k.shape[0] !== b || k.shape[2] !== w) return null;
  return [b, tq, k.shape[1]!, heads, w / heads];
}

const forward: NativeKernelSpec = {
  name: ATTENTION_KERNELS.forward,
  run: ({ inputs, backend, attrs }, addon) => {
    const { q, k, v, mask } = inputs as Record<string, TensorInfo | undefined>;
    const d = dims(q!, k!, Number(attrs?.heads));
    if (!d) return null;
    const [b, tq, tk, heads] = d;
    const scoreShape = [b, heads, tq, tk];
    if (mask && mask.shape.length > 4) return null;
    const strides = mask ? broadcastStrides(mask.shape, scoreShape) : [0, 0, 0, 0];
    const out = allocF32(backend, sizeOf(q!.shape));
    const probs = allocF32(backend, sizeOf(scoreShape));
    addon.attentionForward(
      f32(backend, q!),
      f32(backend, k!),
      f32(backend, v!),
      mask ? f32(backend, mask) : null,
      int32(strides),
      out,
      probs,
      ...d,
      Number(attrs?.scale),
    );
    return [output(backend, [...q!.shape], 'float32', out), output(backend, scoreShape, 'float32', probs)];
  },
};

const backward: NativeKernelSpec = {
  name: ATTENTION_KERNELS.backward,
  run: ({ inputs, backend, attrs }, addon) => {
    const { dy, q, k, v, probs } = inputs as Record<string, TensorInfo>;
    const d = dims(q!, k!, Number(attrs?.heads));
    if (!d) return null;
    const [dq, dk, dv] = [
      allocF32(backend, sizeOf(q!.shape)),
      allocF32(backend, sizeOf(k!.shape)),
      allocF32(backend, sizeOf(v!.shape)),
    ];
    addon.attentionBackward(
      f32(backend, dy!),
      f32(backend, q!),
      f32(backend, k!),
      f32(backend, v!),
      f32(backend, probs!),
      dq,
      dk,
      dv,
      ...d,
      Number(attrs?.scale),
    );
    return [
      output(backend, [...q!.shape], 'float32', dq),
      output(backend, [...k!.shape], 'float32', dk),
      output(backend, [...v!.shape], 'float32', dv),
    ];
  },
};

export const attentionKernels: NativeKernelSpec[] = [forward, backward];

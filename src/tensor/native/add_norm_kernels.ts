/**
 * Fused dropout + residual add + layer norm kernels (native/src/add_norm.cc), run by
 * `dropoutAddLayerNorm` in src/tensor/ops/add_norm.ts:
 *
 * - `LowrankAddNorm` {h, residual, gamma, beta?} attrs {eps, dropout, keep, states, chunk}
 *   (Alea substreams, `aleaStreams` in src/tensor/ops/dropout.ts)
 *   → [y, sum (h·m + residual), mean [rows], rstd [rows], mask (bool, only with dropout)]
 * - `LowrankAddNormGrad` {dy, sum, gamma, mean, rstd, mask?} attrs {keep, hasBeta}
 *   → [dh, dresidual, dgamma, dbeta?]
 */
import { alloc, allocF32, f32, output, vals, type NativeKernelSpec, type TensorInfo } from './kernel.js';
import { sizeOf } from './shape.js';

export const ADD_NORM_KERNELS = {
  forward: 'LowrankAddNorm',
  backward: 'LowrankAddNormGrad',
} as const;

function rowsCols(x: TensorInfo): [number, number] {
  const cols = x.shape[x.shape.length - 1] ?? 1;
  return [cols === 0 ? 0 : sizeOf(x.shape) / cols, cols];
}

const forward: NativeKernelSpec = {
  name: ADD_NORM_KERNELS.forward,
  run: ({ inputs, backend, attrs }, addon) => {
    const { h, residual, gamma, beta } = inputs as Record<string, TensorInfo | undefined>;
    const [rows, cols] = rowsCols(h!);
    const n = rows * cols;
    const drop = attrs?.dropout === true;
    const y = allocF32(backend, n);
    const sum = allocF32(backend, n);
    const mean = allocF32(backend, rows);
    const rstd = allocF32(backend, rows);
    const mask = drop ? (alloc(backend, 'bool', n) as Uint8Array) : null;
    addon.addNormForward(
      f32(backend, h!),
      f32(backend, residual!),
      f32(backend, gamma!),
      beta ? f32(backend, beta) : null,
      y,
      sum,
      mean,
      rstd,
      mask,
      rows,
      cols,
      Number(attrs?.eps),
      Number(attrs?.keep ?? 1),
      mask ? Float64Array.from(attrs?.states as number[]) : null,
      Number(attrs?.chunk ?? 1),
    );
    const shape = [...h!.shape];
    const outs = [
      output(backend, shape, 'float32', y),
      output(backend, shape, 'float32', sum),
      output(backend, [rows], 'float32', mean),
      output(backend, [rows], 'float32', rstd),
    ];
    if (mask) outs.push(output(backend, shape, 'bool', mask));
    return outs;
  },
};

const backward: NativeKernelSpec = {
  name: ADD_NORM_KERNELS.backward,
  run: ({ inputs, backend, attrs }, addon) => {
    const { dy, sum, gamma, mean, rstd, mask } = inputs as Record<string, TensorInfo | undefined>;
    const [rows, cols] = rowsCols(sum!);
    const dh = allocF32(backend, rows * cols);
    const dres = allocF32(backend, rows * cols);
    const dg = allocF32(backend, cols);
    const db = attrs?.hasBeta === true ? allocF32(backend, cols) : null;
    addon.addNormBackward(
      f32(backend, dy!),
      f32(backend, sum!),
      f32(backend, gamma!),
      f32(backend, mean!),
      f32(backend, rstd!),
      mask ? (vals(backend, mask) as Uint8Array) : null,
      dh,
      dres,
      dg,
      db,
      rows,
      cols,
      Number(attrs?.keep ?? 1),
    );
    const shape = [...sum!.shape];
    const outs = [
      output(backend, shape, 'float32', dh),
      output(backend, shape, 'float32', dres),
      output(backend, [cols], 'float32', dg),
    ];
    if (db) outs.push(output(backend, [cols], 'float32', db));
    return outs;
  },
};

export const addNormKernels: NativeKernelSpec[] = [forward, backward];

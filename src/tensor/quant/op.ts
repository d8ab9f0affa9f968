/**
 * Tensor-level 4-bit ops: dequantisation to a tfjs tensor and the 4-bit linear layer's forward with
 * a memory-saving gradient (docs/design.md "Floors": custom ops with their gradients live in tensor/).
 *
 * Dequantisation has three implementations with identical results (bit-equal, f32 per step):
 * a registered fast kernel (the native addon's `dequant.cc` on backend `native`, OpenMP over blocks),
 * the TypedArray loop of `blockwise.ts` (the other CPU backends, or native without the addon), and
 * {@link dequantize4bitOps}, pure tfjs ops for backends whose tensors live on a GPU.
 */
import { tf, type Tensor } from '../tf.js';
import { ShapeError } from '../../errors.js';
import { NATIVE_BACKEND } from '../native/register.js';
import { alloc } from '../native/kernel.js';
import { absmaxOf, dequantize4bit, type Quantized4bit } from './blockwise.js';
import { nativeDequantKernel, type DequantKernel } from './native.js';

export type { DequantKernel } from './native.js';

let fastKernel: DequantKernel | null = null;
let fastBackends: readonly string[] = [];

/**
 * Installs (or, with `null`, removes) a fast dequantisation kernel used while the active tfjs
 * backend is one of `backends`; the TypedArray loop stays the fallback everywhere else. The native
 * addon's kernel is installed for backend `native` when this module loads (below).
 *
 * @example registerDequantKernel((q, out) => out.set(dequantize4bit(q)), ['native']);
 */
export function registerDequantKernel(
  kernel: DequantKernel | null,
  backends: readonly string[] = [NATIVE_BACKEND],
): void {
  fastKernel = kernel;
  fastBackends = kernel ? [...backends] : [];
}

registerDequantKernel(nativeDequantKernel());

/** Which implementation {@link dequantize4bitTensor} uses on the active backend now. */
export function dequantKernelName(): 'registered' | 'typedarray' | 'tfjs-ops' {
  if (!onCpuMemory()) return 'tfjs-ops';
  return fastKernel && fastBackends.includes(tf.getBackend()) ? 'registered' : 'typedarray';
}

/** Backends whose tensors are TypedArrays in this process (an f32 array can be handed over directly). */
function onCpuMemory(): boolean {
  const name = tf.getBackend();
  return name === 'cpu' || name === 'native' || name === 'wasm' || name === 'tensorflow';
}

/**
 * Dequantises into a new float32 tensor of `q.shape` (the caller owns it).
 *
 * @example
 * const w = dequantize4bitTensor(layer.quant); // [out, in]
 * w.dispose();
 */
export function dequantize4bitTensor(q: Quantized4bit): Tensor {
  if (!onCpuMemory()) {
    return tf.tidy(() => {
      const packed = tf.tensor1d(Int32Array.from(q.packed), 'int32');
      const absmax = tf.tensor1d(absmaxOf(q));
      const code = tf.tensor1d(q.code);
      return dequantize4bitOps(packed, absmax, code, q.blocksize, q.shape);
    });
  }
  // From the native backend's recycling pool when there is one: first-touching a fresh 64 MB array
  // costs ~145 ms on this machine, 40x the kernel itself (docs/qlora.md). Both paths write every element.
  const out = alloc(
    tf.backend() as unknown as Parameters<typeof alloc>[0],
    'float32',
    q.numel,
  ) as Float32Array;
  if (fastKernel && fastBackends.includes(tf.getBackend())) fastKernel(q, out);
  else dequantize4bit(q, out);
  return tf.tensor(out, q.shape, 'float32');
}

/**
 * Dequantisation with tfjs ops only (any backend): `packed` int32 bytes [ceil(n/2)], `absmax` [nBlocks],
 * `code` [16]; returns float32 of `shape`. Inputs are not disposed.
 *
 * @example dequantize4bitOps(packedI32, absmax, code, 64, [out, inF])
 */
export function dequantize4bitOps(
  packed: Tensor,
  absmax: Tensor,
  code: Tensor,
  blocksize: number,
  shape: number[],
): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (packed.size !== Math.ceil(numel / 2)) {
    throw new ShapeError('dequantize4bitOps', `packed must hold ceil(${numel}/2) bytes`, packed.size);
  }
  return tf.tidy(() => {
    const bytes = packed.toInt();
    const high = tf.floorDiv(bytes, tf.scalar(16, 'int32')); // first element of the byte
    const low = tf.sub(bytes, tf.mul(high, tf.scalar(16, 'int32')));
    const idx = tf.stack([high, low], 1).reshape([-1]).slice(0, numel); // [n]
    const values = tf.gather(code, idx); // [n]
    const nBlocks = absmax.size;
    const padded = nBlocks * blocksize;
    const v = padded === numel ? values : tf.concat([values, tf.zeros([padded - numel])]);
    const scaled = tf.mul(v.reshape([nBlocks, blocksize]), absmax.reshape([nBlocks, 1])); // [nBlocks, bs]
    return scaled.reshape([-1]).slice(0, numel).reshape(shape);
  });
}

/**
 * `y = x·Wᵀ + b` with W held 4-bit ([out, in], dequantised on the fly). The gradient with respect to
 * `x` dequantises W again instead of keeping the dense copy alive until the backward pass (as
 * bitsandbytes' `MatMul4Bit` saves only the quant state), so a training step holds at most one
 * dense layer weight at a time. `bias` (f32, may be a trainable variable) gets its gradient too.
 *
 * @example linear4bit(x, layer.quant, layer.bias) // x [.., in] → [.., out]
 */
export function linear4bit(x: Tensor, q: Quantized4bit, bias: Tensor | null): Tensor {
  const [outF, inF] = q.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  if (x.shape[x.shape.length - 1] !== inF) {
    throw new ShapeError(
      'linear4bit',
      `input's last dimension must be ${inF}`,
      x.shape,
      'check the layer sizes',
    );
  }
  const matmul = (a: Tensor, transposeB: boolean): Tensor =>
    tf.tidy(() => {
      const w = dequantize4bitTensor(q);
      return tf.matMul(a as tf.Tensor2D, w as tf.Tensor2D, false, transposeB);
    });
  const value = (xx: Tensor, b: Tensor | null): Tensor =>
    tf.tidy(() => {
      const y = matmul(xx.reshape([-1, inF]), true); // [N, out]
      return (b ? tf.add(y, b) : y).reshape([...lead, outF]);
    });
  const dx = (dy: Tensor): Tensor => tf.tidy(() => matmul(dy.reshape([-1, outF]), false).reshape(x.shape));
  if (!bias) {
    const f = tf.customGrad(
      asGradFunc((xx: Tensor) => ({ value: value(xx, null), gradFunc: (dy: Tensor) => dx(dy) })),
    );
    return f(x);
  }
  const f = tf.customGrad(
    asGradFunc((xx: Tensor, b: Tensor) => ({
      value: value(xx, b),
      gradFunc: (dy: Tensor) => [dx(dy), tf.tidy(() => dy.reshape([-1, outF]).sum(0))],
    })),
  );
  return f(x, bias);
}

type CustomGradFunc = Parameters<typeof tf.customGrad>[0];

/** tfjs types `customGrad`'s callback with variadic inputs plus a save function; ours take fixed tensors. */
function asGradFunc(
  fn: (...inputs: Tensor[]) => { value: Tensor; gradFunc: (dy: Tensor) => Tensor | Tensor[] },
): CustomGradFunc {
  return fn as unknown as CustomGradFunc;
}

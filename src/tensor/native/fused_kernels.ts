/**
 * lowrank's own fused kernels (names prefixed `Lowrank`), run by the ops in src/tensor/ops through
 * `tf.engine().runKernel` when the active backend is `native`; the ops wrap them in `customGrad`
 * with the matching *Grad kernel. Other backends never see these names (the ops compose tfjs ops).
 */
import { allocF32, f32, output, vals, type NativeKernelSpec, type TensorInfo } from './kernel.js';
import { broadcastStrides, int32, sizeOf } from './shape.js';

export const FUSED = {
  norm: 'LowrankNorm',
  normGrad: 'LowrankNormGrad',
  gelu: 'LowrankGelu',
  geluGrad: 'LowrankGeluGrad',
  crossEntropy: 'LowrankCrossEntropy',
  crossEntropyGrad: 'LowrankCrossEntropyGrad',
  maskedSoftmax: 'LowrankMaskedSoftmax',
  softmaxGrad: 'LowrankSoftmaxGrad',
  adamw: 'LowrankAdamW',
  adamwAll: 'LowrankAdamWAll',
  dropout: 'LowrankDropout',
  sensitivityEma: 'LowrankSensitivityEma',
  sensitivityEmaAll: 'LowrankSensitivityEmaAll',
} as const;

function rowsCols(x: TensorInfo): [number, number] {
  const cols = x.shape[x.shape.length - 1] ?? 1;
  return [cols === 0 ? 0 : sizeOf(x.shape) / cols, cols];
}

/** LowrankNorm {x, gamma, beta?} attrs {eps, rms} → [y, mean [rows], rstd [rows]]. */
const norm: NativeKernelSpec = {
  name: FUSED.norm,
  run: ({ inputs, backend, attrs }, addon) => {
    const { x, gamma, beta } = inputs as { x: TensorInfo; gamma: TensorInfo; beta?: TensorInfo };
    const [rows, cols] = rowsCols(x);
    const y = allocF32(backend, rows * cols);
    const mean = allocF32(backend, rows);
    const rstd = allocF32(backend, rows);
    const b = beta ? f32(backend, beta) : null;
    addon.normForward(
      f32(backend, x),
      f32(backend, gamma),
      b,
      y,
      mean,
      rstd,
      rows,
      cols,
      Number(attrs?.eps),
      attrs?.rms === true,
    );
    return [
      output(backend, [...x.shape], 'float32', y),
      output(backend, [rows], 'float32', mean),
      output(backend, [rows], 'float32', rstd),
    ];
  },
};

/** LowrankNormGrad {dy, x, gamma, mean, rstd} attrs {rms, hasBeta} → [dx, dgamma, dbeta?]. */
const normGrad: NativeKernelSpec = {
  name: FUSED.normGrad,
  run: ({ inputs, backend, attrs }, addon) => {
    const { dy, x, gamma, mean, rstd } = inputs as Record<string, TensorInfo>;
    const [rows, cols] = rowsCols(x!);
    const dx = allocF32(backend, rows * cols);
    const dg = allocF32(backend, cols);
    const db = attrs?.hasBeta === true ? allocF32(backend, cols) : null;
    addon.normBackward(
      f32(backend, dy!),
      f32(backend, x!),
      f32(backend, gamma!),
      f32(backend, mean!),
      f32(backend, rstd!),
      dx,
      dg,
      db,
      rows,
      cols,
      attrs?.rms === true,
    );
    const outs = [output(backend, [...x!.shape], 'float32', dx), output(backend, [cols], 'float32', dg)];
    if (db) outs.push(output(backend, [cols], 'float32', db));
    return outs;
  },
};

/** LowrankGelu {x} attrs {tanh}; LowrankGeluGrad {x, dy} attrs {tanh} → dy·gelu'(x). */
const gelu: NativeKernelSpec = {
  name: FUSED.gelu,
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    const out = allocF32(backend, sizeOf(x.shape));
    addon.gelu(f32(backend, x), out, null, attrs?.tanh === true);
    return output(backend, [...x.shape], 'float32', out);
  },
};

const geluGrad: NativeKernelSpec = {
  name: FUSED.geluGrad,
  run: ({ inputs, backend, attrs }, addon) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const out = allocF32(backend, sizeOf(x.shape));
    addon.gelu(f32(backend, x), out, f32(backend, dy), attrs?.tanh === true);
    return output(backend, [...x.shape], 'float32', out);
  },
};

/**
 * LowrankCrossEntropy {logits [N, C], labels int32 [N]} attrs {ignoreIndex}
 * → [loss scalar = Σ −log p[label] / max(count, 1), probs [N, C], count scalar].
 */
const crossEntropy: NativeKernelSpec = {
  name: FUSED.crossEntropy,
  run: ({ inputs, backend, attrs }, addon) => {
    const { logits, labels } = inputs as { logits: TensorInfo; labels: TensorInfo };
    const [rows, cols] = rowsCols(logits);
    const probs = allocF32(backend, rows * cols);
    const [sum, count] = addon.crossEntropy(
      f32(backend, logits),
      vals(backend, labels) as Int32Array,
      probs,
      rows,
      cols,
      Number(attrs?.ignoreIndex),
    );
    return [
      output(backend, [], 'float32', Float32Array.of(sum / Math.max(count, 1))),
      output(backend, [rows, cols], 'float32', probs),
      output(backend, [], 'float32', Float32Array.of(count)),
    ];
  },
};

/** LowrankCrossEntropyGrad {probs, labels, dy scalar, count scalar} attrs {ignoreIndex} → dlogits. */
const crossEntropyGrad: NativeKernelSpec = {
  name: FUSED.crossEntropyGrad,
  run: ({ inputs, backend, attrs }, addon) => {
    const { probs, labels, dy, count } = inputs as Record<string, TensorInfo>;
    const [rows, cols] = rowsCols(probs!);
    const scale = f32(backend, dy!)[0]! / Math.max(f32(backend, count!)[0]!, 1);
    const out = allocF32(backend, rows * cols);
    addon.crossEntropyGrad(
      f32(backend, probs!),
      vals(backend, labels!) as Int32Array,
      out,
      rows,
      cols,
      Number(attrs?.ignoreIndex),
      scale,
    );
    return output(backend, [rows, cols], 'float32', out);
  },
};

/**
 * LowrankMaskedSoftmax {scores [B, H, Tq, Tk], mask?} attrs {scale} → softmax(scores·scale + mask);
 * the mask broadcasts to the scores' shape.
 */
const maskedSoftmax: NativeKernelSpec = {
  name: FUSED.maskedSoftmax,
  run: ({ inputs, backend, attrs }, addon) => {
    const { scores, mask } = inputs as { scores: TensorInfo; mask?: TensorInfo };
    if (scores.shape.length !== 4 || (mask && mask.shape.length > 4)) return null;
    const out = allocF32(backend, sizeOf(scores.shape));
    const strides = mask ? broadcastStrides(mask.shape, scores.shape) : [0, 0, 0, 0];
    const m = mask ? f32(backend, mask) : null;
    addon.maskedSoftmax(
      f32(backend, scores),
      m,
      out,
      int32(scores.shape),
      int32(strides),
      Number(attrs?.scale ?? 1),
    );
    return output(backend, [...scores.shape], 'float32', out);
  },
};

/** LowrankSoftmaxGrad {y, dy} attrs {scale} → scale · y ⊙ (dy − Σ dy ⊙ y) over the last axis. */
const softmaxGrad: NativeKernelSpec = {
  name: FUSED.softmaxGrad,
  run: ({ inputs, backend, attrs }, addon) => {
    const { y, dy } = inputs as { y: TensorInfo; dy: TensorInfo };
    const [rows, cols] = rowsCols(y);
    const out = allocF32(backend, rows * cols);
    addon.softmaxGrad(f32(backend, y), f32(backend, dy), out, rows, cols, Number(attrs?.scale ?? 1));
    return output(backend, [...y.shape], 'float32', out);
  },
};

/** LowrankAdamW {p, g, m, v} attrs {lr, beta1, beta2, eps, weightDecay, step} → [p', m', v']. */
const adamw: NativeKernelSpec = {
  name: FUSED.adamw,
  run: ({ inputs, backend, attrs }, addon) => {
    const { p, g, m, v } = inputs as Record<string, TensorInfo>;
    const n = sizeOf(p!.shape);
    const outs = [allocF32(backend, n), allocF32(backend, n), allocF32(backend, n)] as const;
    const h = (k: string) => Number(attrs?.[k]);
    addon.adamw(
      f32(backend, p!),
      f32(backend, g!),
      f32(backend, m!),
      f32(backend, v!),
      ...outs,
      h('lr'),
      h('beta1'),
      h('beta2'),
      h('eps'),
      h('weightDecay'),
      h('step'),
    );
    return outs.map((o) => output(backend, [...p!.shape], 'float32', o));
  },
};

/**
 * LowrankAdamWAll {p0, g0, m0, v0, p1, …} attrs as LowrankAdamW → [p0', m0', v0', p1', …]: every
 * parameter of an optimizer in one call (the same per-element arithmetic as LowrankAdamW).
 */
const adamwAll: NativeKernelSpec = {
  name: FUSED.adamwAll,
  run: ({ inputs, backend, attrs }, addon) => {
    const lists: TensorInfo[][] = [[], [], [], []];
    for (let i = 0; inputs[`p${i}`] !== undefined; i++)
      ['p', 'g', 'm', 'v'].forEach((k, j) => lists[j]!.push(inputs[`${k}${i}`]!));
    const [ps, gs, ms, vs] = lists as [TensorInfo[], TensorInfo[], TensorInfo[], TensorInfo[]];
    const outs = [0, 1, 2].map(() => ps.map((p) => allocF32(backend, sizeOf(p.shape))));
    const arrays = (ts: TensorInfo[]) => ts.map((t) => f32(backend, t));
    const h = (k: string) => Number(attrs?.[k]);
    addon.adamwAll(
      arrays(ps),
      arrays(gs),
      arrays(ms),
      arrays(vs),
      outs[0]!,
      outs[1]!,
      outs[2]!,
      h('lr'),
      h('beta1'),
      h('beta2'),
      h('eps'),
      h('weightDecay'),
      h('step'),
    );
    return ps.flatMap((p, i) => outs.map((o) => output(backend, [...p.shape], 'float32', o[i]!)));
  },
};

/**
 * LowrankDropout {x} attrs {keep, states, chunk} → [y, mult]: tf.dropout's mask from Alea
 * substreams (`states`: s0, s1, s2, c per chunk of `chunk` elements; see `aleaStreams` in
 * src/tensor/ops/dropout.ts), y = x·mult.
 */
const dropout: NativeKernelSpec = {
  name: FUSED.dropout,
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    const n = sizeOf(x.shape);
    const [y, mult] = [allocF32(backend, n), allocF32(backend, n)];
    const h = (k: string) => Number(attrs?.[k]);
    const states = Float64Array.from(attrs?.states as number[]);
    addon.dropout(f32(backend, x), y, mult, h('keep'), states, h('chunk'));
    return [output(backend, [...x.shape], 'float32', y), output(backend, [...x.shape], 'float32', mult)];
  },
};

/** LowrankSensitivityEma {p, g, i0?, u0?} attrs {beta1, beta2} → [ipt, avgI, avgU] (AdaLoRA). */
const sensitivityEma: NativeKernelSpec = {
  name: FUSED.sensitivityEma,
  run: ({ inputs, backend, attrs }, addon) => {
    const { p, g, i0, u0 } = inputs as Record<string, TensorInfo | undefined>;
    const n = sizeOf(p!.shape);
    const outs = [allocF32(backend, n), allocF32(backend, n), allocF32(backend, n)] as const;
    const opt = (t: TensorInfo | undefined) => (t ? f32(backend, t) : null);
    addon.sensitivityEma(
      f32(backend, p!),
      f32(backend, g!),
      opt(i0),
      opt(u0),
      ...outs,
      Number(attrs?.beta1),
      Number(attrs?.beta2),
    );
    return outs.map((o) => output(backend, [...p!.shape], 'float32', o));
  },
};

/**
 * LowrankSensitivityEmaAll {p0, g0, a0?, u0?, p1, …} attrs {beta1, beta2} → [ipt0, avgI0, avgU0, ipt1, …]:
 * the sensitivity EMA of every tracked parameter in one call (a{i}/u{i}: previous Ī/Ū, absent = zeros).
 */
const sensitivityEmaAll: NativeKernelSpec = {
  name: FUSED.sensitivityEmaAll,
  run: ({ inputs, backend, attrs }, addon) => {
    const ps: TensorInfo[] = [];
    for (let i = 0; inputs[`p${i}`] !== undefined; i++) ps.push(inputs[`p${i}`]!);
    const opt = (t: TensorInfo | undefined) => (t ? f32(backend, t) : null);
    const outs = [0, 1, 2].map(() => ps.map((p) => allocF32(backend, sizeOf(p.shape))));
    addon.sensitivityEmaAll(
      ps.map((p) => f32(backend, p)),
      ps.map((_, i) => f32(backend, inputs[`g${i}`]!)),
      ps.map((_, i) => opt(inputs[`a${i}`])),
      ps.map((_, i) => opt(inputs[`u${i}`])),
      outs[0]!,
      outs[1]!,
      outs[2]!,
      Number(attrs?.beta1),
      Number(attrs?.beta2),
    );
    return ps.flatMap((p, i) => outs.map((o) => output(backend, [...p.shape], 'float32', o[i]!)));
  },
};

export const fusedKernels: NativeKernelSpec[] = [
  sensitivityEmaAll,
  adamw,
  adamwAll,
  dropout,
  sensitivityEma,
  norm,
  normGrad,
  gelu,
  geluGrad,
  crossEntropy,
  crossEntropyGrad,
  maskedSoftmax,
  softmaxGrad,
];

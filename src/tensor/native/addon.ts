/**
 * Loads the optional Node-API addon (native/build/Release/lowrank_native.node, built at install by
 * scripts/install-native.mjs) and types its functions. Never throws: when the addon is missing or
 * fails to load, {@link loadAddon} returns null and {@link addonError} says why.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

type F32 = Float32Array;
type I32 = Int32Array;
type Typed = Float32Array | Int32Array | Uint8Array;

/** The addon's functions (native/src/*.cc); every output array is allocated by the caller. */
export interface NativeAddon {
  setThreads(n: number): void;
  info(): {
    blas: string;
    blasCore: string;
    threads: number;
    ompThreads: number;
    cores: number;
    parallelGrain: number;
  };
  batchMatMul(
    a: F32,
    b: F32,
    out: F32,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    aOffsets: I32,
    bOffsets: I32,
    bias: F32 | null,
    activation: number,
    alpha: number,
  ): void;
  sgemm(a: F32, b: F32, out: F32, m: number, n: number, k: number, transA: boolean, transB: boolean): void;
  binary(op: number, a: F32, b: F32, out: F32 | Uint8Array, shape: I32, aStrides: I32, bStrides: I32): void;
  unary(op: number, x: F32, out: F32, p: number, q: number): void;
  select(cond: Uint8Array, a: F32, b: F32, out: F32, inner: number): void;
  cast(x: Typed, out: Typed, from: number, to: number): void;
  reduce(op: number, x: F32, out: F32 | I32, outer: number, r: number, inner: number): void;
  copy(
    src: Typed,
    dst: Typed,
    shape: I32,
    srcStrides: I32,
    srcOffset: number,
    dstStrides: I32,
    dstOffset: number,
    elemBytes: number,
  ): void;
  gather(
    x: Typed,
    indices: I32,
    out: Typed,
    outer: number,
    axis: number,
    inner: number,
    elemBytes: number,
  ): number;
  segmentSum(x: F32, ids: I32, out: F32, numSegments: number, inner: number): void;
  softmax(x: F32, out: F32, rows: number, cols: number, log: boolean): void;
  normForward(
    x: F32,
    gamma: F32,
    beta: F32 | null,
    out: F32,
    mean: F32,
    rstd: F32,
    rows: number,
    cols: number,
    eps: number,
    rms: boolean,
  ): void;
  normBackward(
    dy: F32,
    x: F32,
    gamma: F32,
    mean: F32,
    rstd: F32,
    dx: F32,
    dgamma: F32,
    dbeta: F32 | null,
    rows: number,
    cols: number,
    rms: boolean,
  ): void;
  gelu(x: F32, out: F32, dy: F32 | null, tanh: boolean): void;
  crossEntropy(
    logits: F32,
    labels: I32,
    probs: F32,
    rows: number,
    cols: number,
    ignore: number,
  ): [number, number];
  adamw(
    p: F32,
    g: F32,
    m: F32,
    v: F32,
    pOut: F32,
    mOut: F32,
    vOut: F32,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void;
  /** `adamw` over lists of parameters (same arithmetic), one call for an optimizer step. */
  adamwAll(
    p: F32[],
    g: F32[],
    m: F32[],
    v: F32[],
    pOut: F32[],
    mOut: F32[],
    vOut: F32[],
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void;
  maskedSoftmax(x: F32, mask: F32 | null, out: F32, shape: I32, maskStrides: I32, scale: number): void;
  softmaxGrad(y: F32, dy: F32, dx: F32, rows: number, cols: number, scale: number): void;
  /** tf.dropout's mask from Alea substreams: states (s0, s1, s2, c) per chunk of `chunk` elements. */
  dropout(x: F32, y: F32, mult: F32, keep: number, states: Float64Array, chunk: number): void;
  /** AdaLoRA's orthogonal regulariser over all matrices; writes ∂R/∂P_i into grads[i], returns R. */
  orthReg(ps: F32[], rows: I32, cols: I32, isA: Uint8Array, grads: F32[]): number;
  /** Multi-head attention over [B, T, heads·d] q/k/v (native/src/attention.cc). */
  attentionForward(
    q: F32,
    k: F32,
    v: F32,
    mask: F32 | null,
    maskStrides: I32,
    out: F32,
    probs: F32,
    b: number,
    tq: number,
    tk: number,
    heads: number,
    d: number,
    scale: number,
  ): void;
  attentionBackward(
    dy: F32,
    q: F32,
    k: F32,
    v: F32,
    probs: F32,
    dq: F32,
    dk: F32,
    dv: F32,
    b: number,
    tq: number,
    tk: number,
    heads: number,
    d: number,
    scale: number,
  ): void;
  /** LayerNorm(dropout(h) + residual) per row (native/src/add_norm.cc); mask null = no dropout. */
  addNormForward(
    h: F32,
    residual: F32,
    gamma: F32,
    beta: F32 | null,
    y: F32,
    sum: F32,
    mean: F32,
    rstd: F32,
    mask: Uint8Array | null,
    rows: number,
    cols: number,
    eps: number,
    keep: number,
    states: Float64Array | null,
    chunk: number,
  ): void;
  addNormBackward(
    dy: F32,
    sum: F32,
    gamma: F32,
    mean: F32,
    rstd: F32,
    mask: Uint8Array | null,
    dh: F32,
    dres: F32,
    dgamma: F32,
    dbeta: F32 | null,
    rows: number,
    cols: number,
    keep: number,
  ): void;
  /** ys[i] = xs[i]·s for every pair. */
  scaleAll(xs: F32[], ys: F32[], s: number): void;
  /** AdaLoRA's small factors: left = A∘E [r, in], scaledB = (B·s)/(ranknum + 1e-5) [out, r]. */
  svdPrep(
    a: F32,
    e: F32,
    b: F32,
    ranknum: F32,
    left: F32,
    scaledB: F32,
    r: number,
    inF: number,
    outF: number,
    scale: number,
  ): void;
  /** AdaLoRA's triplet scores per group (E first, then A / B parts), written into outs[g] ([r]). */
  tripletScores(
    ipt: F32[],
    unc: F32[] | null,
    kinds: Uint8Array,
    rows: I32,
    cols: I32,
    groupStart: I32,
    outs: F32[],
  ): void;
  /** The gradients of `svdPrep`: dA = dLeft·E, dE = Σ_j dLeft·A, dB = dScaledB/(ranknum + 1e-5)·s. */
  svdPrepGrad(
    dLeft: F32,
    dScaledB: F32,
    a: F32,
    e: F32,
    ranknum: F32,
    dA: F32,
    dE: F32,
    dB: F32,
    r: number,
    inF: number,
    outF: number,
    scale: number,
  ): void;
  /**
   * The adapted linear layer (native/src/adapter.cc): y = x·Wᵀ + bias + (drop(x)·leftᵀ)·(b·bScale)ᵀ,
   * h = drop(x)·leftᵀ, the dropout mask (tf.dropout's Alea stream) into `mask` when given.
   */
  adapterForward(
    x: F32,
    w: F32,
    bias: F32 | null,
    left: F32,
    b: F32,
    y: F32,
    h: F32,
    mask: Uint8Array | null,
    rows: number,
    inF: number,
    outF: number,
    r: number,
    wInOut: number,
    keep: number,
    states: Float64Array | null,
    chunk: number,
    bScale: number,
  ): void;
  /** Its gradients: dx = dy·W + (dy·b·bScale·left)∘mask/keep, dLeft, db (= dS·bScale). */
  adapterBackward(
    dy: F32,
    x: F32,
    w: F32,
    mask: Uint8Array | null,
    h: F32,
    left: F32,
    b: F32,
    dx: F32,
    dLeft: F32,
    db: F32,
    rows: number,
    inF: number,
    outF: number,
    r: number,
    wInOut: number,
    keep: number,
    bScale: number,
  ): void;
  /** `sensitivityEma` over lists of parameters (same arithmetic), one call per allocator step. */
  sensitivityEmaAll(
    p: F32[],
    g: F32[],
    i0: (F32 | null)[],
    u0: (F32 | null)[],
    ipt: F32[],
    avgI: F32[],
    avgU: F32[],
    beta1: number,
    beta2: number,
  ): void;
  sensitivityEma(
    p: F32,
    g: F32,
    i0: F32 | null,
    u0: F32 | null,
    ipt: F32,
    avgI: F32,
    avgU: F32,
    beta1: number,
    beta2: number,
  ): void;
  crossEntropyGrad(
    probs: F32,
    labels: I32,
    dlogits: F32,
    rows: number,
    cols: number,
    ignore: number,
    scale: number,
  ): void;
}

const ADDON_RELATIVE = join('native', 'build', 'Release', 'lowrank_native.node');

let cached: NativeAddon | null | undefined;
let loadError: string | undefined;

/** Package root: two levels above src/tensor/native (or dist/tensor/native). */
function packageRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/** Threading variables this module sets when it loads the addon. */
const TUNED_ENV = ['OMP_WAIT_POLICY'] as const;
const inheritedEnv: Partial<Record<(typeof TUNED_ENV)[number], string | undefined>> = {};

/**
 * The process environment as the user gave it: `process.env` with the threading variables this
 * module set for itself put back (removed when the user had not set them). Benchmarks start their
 * reference processes (PyTorch) with it, so those run at their own defaults.
 * @example spawnSync('/usr/bin/python3', ['bench/torch_bench.py'], { env: userEnvironment() });
 */
export function userEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of TUNED_ENV) {
    if (!(k in inheritedEnv)) continue;
    const v = inheritedEnv[k];
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * The addon, or null when it is not built or cannot load (reason in {@link addonError}).
 * `LOWRANK_NATIVE=0` disables it (for testing the fallbacks).
 *
 * @example
 * const addon = loadAddon(); if (addon) addon.setThreads(2);
 */
export function loadAddon(): NativeAddon | null {
  if (cached !== undefined) return cached;
  if (process.env.LOWRANK_NATIVE === '0') {
    loadError = 'disabled by LOWRANK_NATIVE=0';
    return (cached = null);
  }
  const file = join(packageRoot(), ADDON_RELATIVE);
  if (!existsSync(file)) {
    loadError = `${ADDON_RELATIVE} not built (needs g++, make, python3 and libopenblas-dev; then npm rebuild lowrank)`;
    return (cached = null);
  }
  // libgomp reads these when the addon is loaded. Its default (spin ~300k iterations before
  // sleeping) is ruinous on a shared or oversubscribed machine: measured here under load, a 2-layer
  // encoder forward took 4.8 s with spinning workers and 0.9 s with passive ones.
  for (const k of TUNED_ENV) inheritedEnv[k] ??= process.env[k];
  process.env.OMP_WAIT_POLICY ??= 'passive';
  try {
    cached = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (e) {
    loadError = `${ADDON_RELATIVE} failed to load: ${(e as Error).message}`;
    cached = null;
  }
  return cached;
}

/** Why the addon did not load (undefined when it did or was never asked for). */
export function addonError(): string | undefined {
  loadAddon();
  return loadError;
}

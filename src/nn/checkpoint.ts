/**
 * Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"; what
 * transformers' `gradient_checkpointing_enable()` does per decoder layer): a block's forward runs with
 * the tape off and keeps only its input; backward runs the block again with the tape on, from the
 * same random state, and backpropagates through that copy. A step then holds one block's activations
 * (and its intermediate gradients) at a time instead of every block's, for one more block forward.
 *
 * tfjs keeps every tensor a kernel saved for backward, and every intermediate gradient, until the
 * whole backward pass ends; behind a checkpoint those live only inside the block's own backward.
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import { defaultRng } from './init.js';
import type { RngState } from '../util/rng.js';
import type { Module } from './module.js';

/** Tensors a block reads besides its input (rope tables, masks); null entries pass through. */
export type BlockConsts = (Tensor | null)[];

/** The block as a function of its input and its consts; must build the same graph on every call. */
export type BlockFn = (x: Tensor, consts: BlockConsts) => Tensor;

const enabled = new WeakSet<Module>();

/**
 * Turns activation checkpointing on (or off) for every module of `model`: decoder trunks that have
 * the hook (Llama, Qwen2, Mistral, Gemma, Gemma 2, Phi-3) then checkpoint each decoder layer whenever
 * gradients are being recorded without a KV cache. Losses and gradients are unchanged (same kernels,
 * same dropout masks); evaluation and generation are not affected.
 *
 * @example
 * setGradientCheckpointing(peftModel, true); // HF: model.gradient_checkpointing_enable()
 */
export function setGradientCheckpointing(model: Module, on = true): void {
  for (const [, m] of model.namedModules()) {
    if (on) enabled.add(m);
    else enabled.delete(m);
  }
}

/** Whether `setGradientCheckpointing` turned checkpointing on for this module. */
export function isGradientCheckpointing(module: Module): boolean {
  return enabled.has(module);
}

/**
 * True when `trunk` should checkpoint its blocks for this call: enabled, gradients being recorded,
 * and no cache in or out (a checkpointed block returns only its hidden states).
 *
 * @example if (checkpointActive(this, inputs)) x = checkpointBlock(layer, x, [cos, sin, mask], run);
 */
export function checkpointActive(
  trunk: Module,
  inputs: { useCache?: boolean; pastKeyValues?: unknown },
): boolean {
  return enabled.has(trunk) && tapeRecording() && !inputs.useCache && !inputs.pastKeyValues;
}

interface EngineState {
  activeTape: unknown;
  gradientDepth: number;
}
interface EngineInternals {
  state: EngineState;
  isTapeOn(): boolean;
  gradients(
    f: () => Tensor,
    xs: Tensor[],
    dy?: Tensor,
    allowNoGradients?: boolean,
  ): { value: Tensor; grads: Tensor[] };
}

function engine(): EngineInternals {
  return tf.engine() as unknown as EngineInternals;
}

/** Is a `tf.grads`/`tf.variableGrads` recording the ops run now (and not inside a kernel)? */
export function tapeRecording(): boolean {
  return engine().isTapeOn();
}

function uniqueTrainable(block: Module): Variable[] {
  return [...new Set(block.parameters().filter((p) => p.trainable))];
}

/**
 * Runs `fn(x, consts)` as one checkpointed node: gradients flow to `x` and to the block's trainable
 * parameters (frozen ones get none, so no frozen weight gradient is ever computed). Outside gradient
 * recording it is just `fn(x, consts)`.
 *
 * @example
 * const h = checkpointBlock(layer, x, [cos, sin, mask], (xi, [c, s, m]) => layer.forward(xi, { cos: c!, sin: s! }, m).h);
 */
export function checkpointBlock(block: Module, x: Tensor, consts: BlockConsts, fn: BlockFn): Tensor {
  if (!tapeRecording()) return fn(x, consts);
  const params = uniqueTrainable(block);
  const present = consts.filter((c): c is Tensor => c !== null);
  const rngAtForward = defaultRng().state();
  const node = tf.customGrad(((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xi = args[0] as Tensor;
    save([xi, ...present]); // kept by the tape until the end of backward: the input, not the activations
    return {
      value: fn(xi, consts), // tape off here (inside a kernel): intermediates are freed by the tidy
      gradFunc: (dy: Tensor, saved: Tensor[]) => recompute(fn, consts, saved, params, rngAtForward, dy),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return node(x, ...params) as Tensor;
}

/** The block again with the tape on, from the forward's random state; gradients for [x, ...params]. */
function recompute(
  fn: BlockFn,
  consts: BlockConsts,
  saved: Tensor[],
  params: Variable[],
  rngAtForward: RngState,
  dy: Tensor,
): Tensor[] {
  const [xSaved, ...kept] = saved;
  let k = 0;
  const again = consts.map((c) => (c === null ? null : kept[k++]!));
  const eng = engine();
  // A nested gradients() call starts a fresh tape when no outer one is recording (the outer
  // backward runs with the tape off) and clears it at its end: keep the outer tape's list.
  const outerTape = eng.state.activeTape;
  const rng = defaultRng();
  const rngNow = rng.state();
  rng.setState(rngAtForward); // same dropout masks as the forward
  try {
    const xs = [xSaved!, ...params];
    const { value, grads } = eng.gradients(() => fn(xSaved!, again), xs, dy, true);
    value.dispose();
    return grads.map((g, i) => g ?? tf.zerosLike(xs[i]!));
  } finally {
    eng.state.activeTape = outerTape;
    rng.setState(rngNow);
  }
}

/**
 * Mixed-adapter batches for inference (PEFT `adapter_names=[…]`, lora/layer.py `_mixed_batch_forward`
 * and `_check_forward_args`): row i of the batch goes through adapter `adapterNames[i]`, or through the
 * base model alone when it is `'__base__'`. One forward serves several adapters at once.
 *
 * Each LoRA linear layer computes `base(x)` for the whole batch, then for every adapter in the batch
 * `B(A(x_rows))·s` on its rows only (a gather), and adds the contributions back in row order. The
 * model must be in eval mode, unmerged, and the adapters plain LoRA (DoRA's norm is per adapter and
 * PEFT rejects it here too).
 *
 * @example
 * const out = mixedBatchForward(loraModel, { inputIds }, ['task_a', '__base__', 'task_b']);
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { ConfigError, NotSupportedError, ShapeError } from '../../errors.js';
import type { ModelInputs, ModelOutput } from '../../models/base.js';
import type { BaseTuner, TunerConfig } from '../base/tuner.js';
import { LoraLayer, LoraLinear } from './layer.js';

/** The name that routes a row through the base model only (PEFT `"__base__"`). */
export const BASE_ADAPTER = '__base__';

const W = 'mixedBatchForward';

function check(model: BaseTuner<TunerConfig>, batch: number, adapterNames: string[]): LoraLayer[] {
  if (adapterNames.length !== batch) {
    throw new ShapeError(
      W,
      `needs one adapter name per batch row (${batch} rows)`,
      adapterNames.length,
      'pass adapterNames with the batch size',
    );
  }
  const layers = model.tunerLayers().map(([, l]) => l);
  if (layers.some((l) => l.training)) {
    throw new ConfigError(
      W,
      'mixed-adapter batches are for inference only',
      'training mode',
      'call eval() first',
    );
  }
  if (layers.some((l) => l.merged)) {
    throw new ConfigError(
      W,
      'cannot route rows to adapters while adapters are merged',
      'merged',
      'call unmerge() first',
    );
  }
  const known = new Set(model.peftConfig.keys());
  const unknown = [...new Set(adapterNames)].filter((a) => a !== BASE_ADAPTER && !known.has(a));
  if (unknown.length > 0) {
    throw new ConfigError(
      W,
      'unknown adapter name(s)',
      unknown,
      `use ${JSON.stringify([...known])} or "${BASE_ADAPTER}"`,
    );
  }
  for (const a of new Set(adapterNames)) {
    const c = model.peftConfig.get(a);
    if (c && c.peftType !== 'LORA')
      throw new NotSupportedError(
        W,
        `mixed batches with ${c.peftType} adapters ("${a}")`,
        'use LoRA adapters',
      );
    if (c && (c as TunerConfig & { useDora?: boolean }).useDora) {
      throw new ConfigError(
        W,
        'DoRA adapters cannot be mixed in one batch',
        a,
        'run DoRA adapters in separate batches',
      );
    }
  }
  return layers.filter((l): l is LoraLayer => l instanceof LoraLayer);
}

/** `base(x)` plus, for each adapter, its LoRA output on its own rows (the rest of the batch gets 0). */
function mixedLinear(layer: LoraLinear, x: Tensor, groups: Map<string, number[]>, batch: number): Tensor {
  return tf.tidy(() => {
    const result = layer.base_layer.forward(x); // [B, .., out]
    if (layer.disableAdapters) return result;
    if (x.shape[0] !== batch) {
      throw new ShapeError(
        `${W} at a LoRA layer`,
        `expects inputs whose first dimension is the batch (${batch})`,
        x.shape,
        'mixed batches need [B, …] activations',
      );
    }
    const parts: Tensor[] = [];
    const rowOf = new Int32Array(batch).fill(-1); // row i of the result ← row rowOf[i] of the stacked parts
    let offset = 0;
    for (const [adapter, rows] of groups) {
      const A = layer.lora_A.get(adapter);
      if (adapter === BASE_ADAPTER || !A) continue; // layers without this adapter: base only (PEFT)
      const sub = tf.gather(x, rows); // [n, .., in]
      const drop = layer.lora_dropout.get(adapter)!; // eval mode: identity
      parts.push(
        tf.mul(layer.lora_B.get(adapter)!.forward(A.forward(drop.forward(sub))), layer.scalingOf(adapter)),
      );
      rows.forEach((r, i) => (rowOf[r] = offset + i));
      offset += rows.length;
    }
    if (parts.length === 0) return result;
    const zeroRow = tf.zeros([1, ...result.shape.slice(1)]);
    const stacked = tf.concat([...parts, zeroRow], 0); // [offset + 1, .., out]
    const index = tf.tensor1d(
      Array.from(rowOf, (r) => (r < 0 ? offset : r)),
      'int32',
    );
    return tf.add(result, tf.gather(stacked, index));
  });
}

/**
 * Runs `model` with row i routed through adapter `adapterNames[i]` (or the base for `'__base__'`).
 * Works on a `LoraModel` (or anything extending `BaseTuner` whose layers are LoRA layers).
 */
export function mixedBatchForward(
  model: BaseTuner<TunerConfig>,
  inputs: ModelInputs,
  adapterNames: string[],
): ModelOutput {
  const batch = inputs.inputIds.shape[0]!;
  const layers = check(model, batch, adapterNames);
  const groups = new Map<string, number[]>();
  adapterNames.forEach((a, i) => groups.set(a, [...(groups.get(a) ?? []), i]));
  const patched: LoraLayer[] = [];
  try {
    for (const l of layers) {
      if (!(l instanceof LoraLinear)) {
        if ([...groups.keys()].some((a) => l.adapterNames().includes(a))) {
          throw new NotSupportedError(
            W,
            `mixed batches through ${l.constructor.name} adapters`,
            'target linear layers only',
          );
        }
        continue;
      }
      // an own `forward` shadows the class method for this call only; removed in `finally`
      Object.defineProperty(l, 'forward', {
        value: (x: Tensor) => mixedLinear(l, x, groups, batch),
        configurable: true,
      });
      patched.push(l);
    }
    return model.forward(inputs);
  } finally {
    for (const l of patched) delete (l as unknown as { forward?: unknown }).forward;
  }
}

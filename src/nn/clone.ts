/**
 * Deep copy of a module tree (PyTorch `copy.deepcopy(module)`): same classes and plain fields, fresh
 * variables holding copies of every parameter and buffer (trainable flags kept). Used by
 * `ModulesToSaveWrapper` to make the trainable copy of e.g. a classifier head.
 *
 * @example
 * const head2 = cloneModule(model.classifier); // independent weights
 */
import { tf } from '../tensor/tf.js';
import { Module } from './module.js';

interface ModuleInternals {
  _params: Map<string, unknown>;
  _buffers: Map<string, unknown>;
  _children: Map<string, unknown>;
}

export function cloneModule<M extends Module>(m: M): M {
  const copy = Object.create(Object.getPrototypeOf(m) as object) as M;
  const src = m as unknown as Record<string, unknown>;
  const dst = copy as unknown as Record<string, unknown> & ModuleInternals;
  const registered = new Set<string>([
    ...m.localParameters().map(([n]) => n),
    ...m.localBuffers().map(([n]) => n),
    ...m.namedChildren().map(([n]) => n),
  ]);
  for (const key of Object.keys(src)) {
    if (key === '_params' || key === '_buffers' || key === '_children' || registered.has(key)) continue;
    const v = src[key];
    dst[key] = v instanceof Map ? new Map(v) : Array.isArray(v) ? [...(v as unknown[])] : v;
  }
  dst._params = new Map();
  dst._buffers = new Map();
  dst._children = new Map();
  for (const [n, p] of m.localParameters()) {
    const t = tf.clone(p);
    copy.registerParameter(n, t, p.trainable);
    t.dispose();
  }
  for (const [n, b] of m.localBuffers()) {
    const t = tf.clone(b);
    copy.registerBuffer(n, t);
  }
  for (const [n, c] of m.namedChildren()) copy.registerModule(n, cloneModule(c));
  return copy;
}

/**
 * The one import of TensorFlow.js in the library (docs/design.md "Floors"): every other layer imports `tf`
 * from here, so backends, custom ops and memory checks have a single owner.
 */
// tfjs-core with its gradients and chained ops registered, without the parts of the `@tensorflow/tfjs`
// union lowrank does not use in Node (layers, converter, data, webgl): `tfjs.ts` says how and why; the
// web build swaps in `tfjs_browser.ts`.
import type * as core from '@tensorflow/tfjs-core';
import { tfCore } from './tfjs.js';
// Registers the native backend as tfjs's default when the addon is built (else tfjs's cpu), and
// quiets the cpu banner; `initBackend` there picks another backend explicitly.
import './backend.js';

/**
 * TensorFlow.js's API (tfjs-core: ops, `tidy`, `grad`, `Variable`, …).
 *
 * @example
 * const y = tf.tidy(() => tf.tensor1d([1, 2]).square()); // Tensor1D [1, 4]
 */
export const tf: typeof core = tfCore;
/**
 * The tfjs types other modules name as `tf.X` (a value cannot carry types, so they are declared here).
 * Add a line when a module needs another one.
 */
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace tf {
  export type Tensor<R extends core.Rank = core.Rank> = core.Tensor<R>;
  export type Scalar = core.Scalar;
  export type Tensor1D = core.Tensor1D;
  export type Tensor2D = core.Tensor2D;
  export type Tensor3D = core.Tensor3D;
  export type Tensor4D = core.Tensor4D;
  export type Variable<R extends core.Rank = core.Rank> = core.Variable<R>;
  export type Rank = core.Rank;
  export type DataType = core.DataType;
  export type NamedTensorMap = core.NamedTensorMap;
  export type TensorContainer = core.TensorContainer;
  export type GradSaveFunc = core.GradSaveFunc;
  export type NamedAttrMap = core.NamedAttrMap;
}
export type Tensor = core.Tensor;
export type Tensor1D = core.Tensor1D;
export type Tensor2D = core.Tensor2D;
export type Tensor3D = core.Tensor3D;
export type Tensor4D = core.Tensor4D;
export type Variable = core.Variable;
export type Rank = core.Rank;
export type DataType = core.DataType;

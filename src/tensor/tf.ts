/**
 * The one import of TensorFlow.js in the library (docs/design.md "Floors"): every other layer imports `tf`
 * from here, so backends, custom ops and memory checks have a single owner.
 */
// `@tensorflow/tfjs` (not tfjs-core alone): tfjs-core's Node (CJS) bundle registers neither the
// gradients nor the chained ops, and its ESM files do not resolve under Node's ESM loader; the union
// package's bundles register both, in Node and in browser bundlers alike.
import * as tf from '@tensorflow/tfjs';
// Registers the native backend as tfjs's default when the addon is built (else tfjs's cpu), and
// quiets the cpu banner; `initBackend` there picks another backend explicitly.
import './backend.js';

export { tf };
export type Tensor = tf.Tensor;
export type Tensor1D = tf.Tensor1D;
export type Tensor2D = tf.Tensor2D;
export type Tensor3D = tf.Tensor3D;
export type Tensor4D = tf.Tensor4D;
export type Variable = tf.Variable;
export type Rank = tf.Rank;
export type DataType = tf.DataType;

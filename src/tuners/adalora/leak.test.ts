/** Building, training-step allocation and disposing an AdaLoRA model leaves no tensor behind. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../tensor/tf.js';
import { tinyLlamaLm, lmInputs } from '../../testing/tiny_models.js';
import { getPeftModel } from '../peft_model.js';
import { AdaLoraConfig } from './index.js';

test('AdaLoRA: build, forward, updateAndAllocate through every phase, dispose: tensor count back to start', () => {
  const before = tf.memory().numTensors;
  const peft = getPeftModel(
    tinyLlamaLm(),
    new AdaLoraConfig({
      targetModules: ['q_proj', 'v_proj'],
      initR: 4,
      targetR: 2,
      totalStep: 6,
      tinit: 1,
      tfinal: 2,
    }),
  );
  const vars = peft.trainableParameters().map(([, v]) => v);
  for (let step = 0; step < 6; step++) {
    const inputs = lmInputs();
    const { value, grads } = tf.variableGrads(() => peft.forward(inputs).loss as tf.Scalar, vars);
    peft.updateAndAllocate(step, new Map(peft.trainableParameters().map(([n, v]) => [n, grads[v.name]!])));
    tf.dispose([value, grads, inputs.inputIds, inputs.labels]);
  }
  peft.dispose();
  assert.equal(tf.memory().numTensors, before);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allLinearShorthand, methodConfig } from './methods.js';

test("methodConfig: --target-modules all-linear is PEFT's shorthand, not a module named 'all-linear'", () => {
  assert.equal(allLinearShorthand(['all-linear']), 'all-linear');
  assert.equal(allLinearShorthand(['ALL-LINEAR']), 'all-linear');
  assert.deepEqual(allLinearShorthand(['q_proj', 'v_proj']), ['q_proj', 'v_proj']);
  assert.equal(allLinearShorthand(undefined), undefined);
  const lora = methodConfig({
    method: 'lora',
    taskType: 'CAUSAL_LM',
    r: 2,
    targetModules: ['all-linear'],
    totalStep: 10,
  });
  assert.equal(lora.targetModules, 'all-linear');
  const ada = methodConfig({
    method: 'adalora',
    taskType: 'CAUSAL_LM',
    r: 2,
    initR: 4,
    targetModules: ['all-linear'],
    totalStep: 100,
  });
  assert.equal(ada.targetModules, 'all-linear');
});

/**
 * The HyperLoRA job glue of `src/run/`: condition sets parsed with the library's typed errors (the CLI
 * turns them into `--conditions` usage errors), examples given their condition without changing the
 * inputs, and the hypernetwork built with LoRA's default targets and the sets' names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../errors.js';
import { tinyLlamaLm } from '../testing/tiny_models.js';
import { buildHyperLora, parseConditions, withCondition } from './hyperlora.js';

test('parseConditions: name=path sets; malformed, duplicate or single sets are ConfigErrors on `conditions`', () => {
  assert.deepEqual(parseConditions(['a=x.txt', ' b = y.txt ']), [
    { name: 'a', path: 'x.txt' },
    { name: 'b', path: 'y.txt' },
  ]);
  const bad = (list: string[] | undefined, re: RegExp) =>
    assert.throws(
      () => parseConditions(list),
      (e: unknown) => e instanceof ConfigError && e.where === 'conditions' && re.test(e.message),
    );
  bad(undefined, /needs at least two training sets/);
  bad(['a=x.txt'], /one condition is plain LoRA.*\(got 1\)/);
  bad(['a', 'b=y.txt'], /each entry must be name=path \(got "a"\)/);
  bad(['a=', 'b=y.txt'], /each entry must be name=path/);
  bad(['a=x.txt', 'a=y.txt'], /a condition name appears twice \(got "a"\)/);
});

test('withCondition copies examples with their condition; buildHyperLora uses the default targets and the set names', () => {
  const src = [{ inputIds: [1, 2], label: -1 }];
  const tagged = withCondition(src, 2);
  assert.deepEqual(tagged, [{ inputIds: [1, 2], label: -1, condition: 2 }]);
  assert.equal('condition' in src[0]!, false, 'the input examples are unchanged');
  const hyper = buildHyperLora(tinyLlamaLm(), { r: 2, loraDropout: 0, names: ['x', 'y'] });
  assert.deepEqual([...new Set(hyper.targets.map((t) => t.type))].sort(), ['q_proj', 'v_proj']);
  assert.deepEqual(hyper.config.conditionNames, ['x', 'y']);
  assert.equal(hyper.config.loraAlpha, 4);
  hyper.dispose();
});

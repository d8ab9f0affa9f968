// How tfjs is loaded in Node (tfjs.ts): the same gradients and chained ops as the `@tensorflow/tfjs`
// union package, without loading the union's unused packages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { tf } from './tf.js';
import { tfCore, UNUSED_TFJS_PACKAGES } from './tfjs.js';

/**
 * Kernel names (tfjs-core exports each as a string constant named after itself, e.g. `Abs = 'Abs'`)
 * that have a registered gradient, and the Tensor methods (the chained ops), in the process that runs
 * `prelude` — this one, or a fresh Node with the full union package.
 */
const SURVEY = `
  const core = require('@tensorflow/tfjs-core');
  const kernels = Object.entries(core).filter(([k, v]) => typeof v === 'string' && k === v).map(([k]) => k);
  const withGradient = kernels.filter((k) => core.getGradient(k) !== undefined).sort();
  const methods = Object.getOwnPropertyNames(core.Tensor.prototype).sort();
  JSON.stringify({ withGradient, methods });
`;

interface Survey {
  withGradient: string[];
  methods: string[];
}

function surveyHere(): Survey {
  const kernels = Object.entries(tfCore)
    .filter(([k, v]) => typeof v === 'string' && k === v)
    .map(([k]) => k);
  return {
    withGradient: kernels.filter((k) => tfCore.getGradient(k) !== undefined).sort(),
    methods: Object.getOwnPropertyNames(tfCore.Tensor.prototype).sort(),
  };
}

function surveyUnion(): Survey {
  const r = spawnSync(
    process.execPath,
    ['-e', `require('@tensorflow/tfjs'); process.stdout.write(eval(${JSON.stringify(SURVEY)}))`],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Survey;
}

test('every gradient and chained op the @tensorflow/tfjs union registers is registered here', () => {
  const here = surveyHere();
  const union = surveyUnion();
  assert.ok(union.withGradient.length > 90, `the union registers gradients (${union.withGradient.length})`);
  assert.deepEqual(here.withGradient, union.withGradient);
  assert.deepEqual(here.methods, union.methods);
  // and they work: a chained op and a gradient through it
  const g = tf.tidy(() =>
    tf
      .grad((x: tf.Tensor) => x.square().sum())(tf.tensor1d([1, -2, 3]))
      .arraySync(),
  );
  assert.deepEqual(g, [2, -4, 6]);
});

test('tfjs-core itself registers no gradients (so the check above can fail)', () => {
  const r = spawnSync(process.execPath, ['-e', `process.stdout.write(eval(${JSON.stringify(SURVEY)}))`], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const bare = JSON.parse(r.stdout) as Survey;
  assert.deepEqual(bare.withGradient, []);
  assert.ok(!bare.methods.includes('square'), 'no chained ops without the union bundle');
});

/** The tfjs files (under node_modules/@tensorflow) a fresh process has loaded after importing `entry`. */
function tfjsFilesLoadedBy(entry: string): string[] {
  const script = `
    import { createRequire } from 'node:module';
    await import(${JSON.stringify(entry)});
    const files = Object.keys(createRequire(import.meta.url).cache)
      .filter((f) => f.includes('/node_modules/@tensorflow/'))
      .map((f) => f.slice(f.indexOf('@tensorflow/')));
    process.stdout.write(JSON.stringify(files.sort()));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

test('the library and the CLI load tfjs-core and the cpu backend only (no layers, converter, data, webgl, union)', () => {
  for (const entry of ['./src/index.ts', './src/cli/main.ts']) {
    const files = tfjsFilesLoadedBy(entry);
    assert.deepEqual(
      files,
      [
        '@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.node.js',
        '@tensorflow/tfjs-core/dist/tf-core.node.js',
      ],
      entry,
    );
    for (const pkg of [...UNUSED_TFJS_PACKAGES, '@tensorflow/tfjs/']) {
      assert.ok(!files.some((f) => f.startsWith(pkg)), `${entry} loads ${pkg}`);
    }
  }
});

// The browser file tree that replaces io/source.ts in the web build: same exports, same errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeSource from '../src/io/source.js';
import * as web from '../src/io/source_browser.js';
import { readFileSync } from 'node:fs';
import { CheckpointError } from '../src/errors.js';

test('source_browser exports every function of source.ts', () => {
  const missing = Object.keys(nodeSource).filter((k) => !(k in web));
  assert.deepEqual(missing, []);
});

test('mounted files read back; folders list sorted; errors are CheckpointErrors', async () => {
  web.unmount('/');
  web.mountFile('/m/config.json', new TextEncoder().encode('{"a":1}'));
  web.mountFile('m/sub/b.bin', new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual(await web.readJson('/m/config.json'), { a: 1 });
  assert.deepEqual(await web.listDir('/m'), ['config.json', 'sub']);
  assert.equal(await web.isDirectory('m/sub'), true);
  assert.equal(await web.isDirectory('/m/config.json'), false);
  assert.equal(await web.pathExists('/nope'), false);
  assert.equal(web.fileSize('/m/sub/b.bin'), 4);
  const f = await web.openRandomAccess('/m/sub/b.bin');
  assert.deepEqual([...(await f.read(1, 2))], [2, 3]);
  await assert.rejects(f.read(3, 2), CheckpointError);
  await assert.rejects(web.readBytes('/m/missing.json'), /no such file/);
  await assert.rejects(web.readBytes('/m/sub'), /it is a directory/);
  web.mountFile('/m/bad.json', new TextEncoder().encode('{oops'));
  await assert.rejects(web.readJson('/m/bad.json'), /is not valid JSON/);
  assert.equal(web.joinPath('/out', 'adapter', 'x.json'), '/out/adapter/x.json');
  assert.equal(web.baseName('/a/b/c.bin'), 'c.bin');
  web.unmount('/');
});

test('writes need an existing parent and land in the tree for takeFile', async () => {
  web.unmount('/');
  await assert.rejects(web.writeFileAtomic('/out/a.json', '{}'), /no such file/);
  await web.makeDir('/out/adapter');
  assert.deepEqual(await web.listDir('/out'), ['adapter']);
  await web.writeFileAtomic('/out/adapter/adapter_config.json', '{"r":8}');
  assert.equal(new TextDecoder().decode(web.takeFile('/out/adapter/adapter_config.json')), '{"r":8}');
  await web.copyFileAtomic('/out/adapter/adapter_config.json', '/out/copy.json');
  assert.equal(await web.readText('/out/copy.json'), '{"r":8}');
  assert.equal(web.unmount('/out'), 2);
  assert.equal(await web.pathExists('/out/adapter'), false);
});

/** Names a TypeScript file exports (`export const|function|class|type|interface NAME`). */
function exportedNames(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const names = [
    ...text.matchAll(
      /^export\s+(?:async\s+)?(?:const|function|class|type|interface|let)\s+([A-Za-z_$][\w$]*)/gm,
    ),
  ].map((m) => m[1]!);
  return [...new Set(names)].sort();
}

test('backend_browser has every export of backend.ts (the web build swaps one for the other)', () => {
  const node = exportedNames('src/tensor/backend.ts');
  const browser = new Set(exportedNames('src/tensor/backend_browser.ts'));
  assert.deepEqual(
    node.filter((n) => !browser.has(n)),
    [],
  );
  const version = /LOWRANK_VERSION = '([^']+)'/.exec(
    readFileSync('src/tensor/backend_browser.ts', 'utf8'),
  )?.[1];
  assert.equal(version, JSON.parse(readFileSync('package.json', 'utf8')).version);
});

test('tfjs_browser has every export of tfjs.ts (how tfjs is loaded: require in Node, the union in a bundle)', () => {
  const browser = new Set(exportedNames('src/tensor/tfjs_browser.ts'));
  assert.deepEqual(
    exportedNames('src/tensor/tfjs.ts').filter((n) => !browser.has(n)),
    [],
  );
});

test('addon_browser has every export of native/addon.ts', () => {
  const browser = new Set(exportedNames('src/tensor/native/addon_browser.ts'));
  const text = readFileSync('src/tensor/native/addon_browser.ts', 'utf8');
  if (/export type \{ NativeAddon \}/.test(text)) browser.add('NativeAddon');
  assert.deepEqual(
    exportedNames('src/tensor/native/addon.ts').filter((n) => !browser.has(n)),
    [],
  );
});

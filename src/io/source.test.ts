import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointError } from '../errors.js';
import {
  copyFileAtomic,
  fileSize,
  isDirectory,
  listDir,
  makeDir,
  openRandomAccess,
  pathExists,
  readBytes,
  readJson,
  readText,
  writeFileAtomic,
} from './source.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));

test('writeFileAtomic replaces a file whole and leaves no temporary files', async () => {
  const dir = tmp();
  const file = path.join(dir, 'a.json');
  await writeFileAtomic(file, '{"v":1}');
  await writeFileAtomic(file, new Uint8Array([0x7b, 0x7d]));
  assert.equal(await readText(file), '{}');
  assert.deepEqual(await listDir(dir), ['a.json']);
  await copyFileAtomic(file, path.join(dir, 'b.json'));
  assert.deepEqual(await readJson(path.join(dir, 'b.json')), {});
  await assert.rejects(
    writeFileAtomic(path.join(dir, 'missing', 'c.json'), 'x'),
    (e: unknown) => e instanceof CheckpointError && /missing\/c\.json: cannot write file/.test(e.message),
  );
  assert.deepEqual(await listDir(dir), ['a.json', 'b.json']);
  fs.rmSync(dir, { recursive: true });
});

test('openRandomAccess reads byte ranges and refuses ranges past the end', async () => {
  const dir = tmp();
  const file = path.join(dir, 'x.bin');
  fs.writeFileSync(file, Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
  const f = await openRandomAccess(file);
  assert.equal(f.size, 10);
  assert.deepEqual(Array.from(await f.read(3, 4)), [3, 4, 5, 6]);
  assert.deepEqual(Array.from(await f.read(10, 0)), []);
  await assert.rejects(
    f.read(8, 3),
    (e: unknown) =>
      e instanceof CheckpointError && /\[8, 11\) is outside the file of 10 bytes/.test(e.message),
  );
  await f.close();
  assert.equal(fileSize(file), 10);
  fs.rmSync(dir, { recursive: true });
});

test('missing paths, directories and bad JSON raise CheckpointErrors naming the path', async () => {
  const dir = tmp();
  await assert.rejects(
    readBytes(path.join(dir, 'nope')),
    /nope: cannot read file: no such file or directory/,
  );
  await assert.rejects(readText(dir), /cannot read file: it is a directory/);
  await assert.rejects(openRandomAccess(path.join(dir, 'nope')), CheckpointError);
  await assert.rejects(listDir(path.join(dir, 'nope')), /cannot list directory/);
  fs.writeFileSync(path.join(dir, 'bad.json'), '{');
  await assert.rejects(readJson(path.join(dir, 'bad.json')), /bad\.json: is not valid JSON/);
  assert.throws(() => fileSize(path.join(dir, 'nope')), CheckpointError);
  await makeDir(path.join(dir, 'a', 'b'));
  assert.equal(await isDirectory(path.join(dir, 'a', 'b')), true);
  assert.equal(await isDirectory(path.join(dir, 'bad.json')), false);
  assert.equal(await pathExists(path.join(dir, 'bad.json')), true);
  assert.equal(await pathExists(path.join(dir, 'nope')), false);
  fs.rmSync(dir, { recursive: true });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tf, type Tensor } from '../tensor/tf.js';
import { CheckpointError } from '../errors.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  saveSafetensors,
  SafetensorsReader,
  type SafeTensorInput,
} from './safetensors.js';
import { floatToBF16Bits, floatToF16Bits, f16BitsToFloat, type SafeDtype } from './dtypes.js';

interface GoldenTensor {
  dtype: SafeDtype;
  shape: number[];
  values?: number[];
  bits?: number[];
  decoded?: number[];
}
interface GoldenCase {
  name: string;
  metadata: Record<string, string> | null;
  tensors: Record<string, GoldenTensor>;
  hex: string;
}
const GOLDEN = JSON.parse(
  fs.readFileSync(new URL('../../tests/fixtures/io_safetensors_golden.json', import.meta.url), 'utf8'),
) as { cases: GoldenCase[] };

function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** F32/I32/BOOL go through the tf.Tensor path; every other dtype through exact typed data. */
function inputFor(g: GoldenTensor): SafeTensorInput {
  const v = g.values ?? [];
  switch (g.dtype) {
    case 'F32':
      return tf.tensor(v, g.shape, 'float32');
    case 'I32':
      return tf.tensor(v, g.shape, 'int32');
    case 'BOOL':
      return tf.tensor(v, g.shape, 'bool');
    case 'F64':
      return { dtype: 'F64', shape: g.shape, data: Float64Array.from(v) };
    case 'F16':
    case 'BF16':
      return { dtype: g.dtype, shape: g.shape, data: Uint16Array.from(g.bits!) };
    case 'I64':
      return { dtype: 'I64', shape: g.shape, data: BigInt64Array.from(v.map((x) => BigInt(x))) };
    case 'I16':
      return { dtype: 'I16', shape: g.shape, data: Int16Array.from(v) };
    case 'I8':
      return { dtype: 'I8', shape: g.shape, data: Int8Array.from(v) };
    case 'U8':
      return { dtype: 'U8', shape: g.shape, data: Uint8Array.from(v) };
    default:
      throw new Error(`golden dtype ${g.dtype} not used`);
  }
}

function disposeInputs(m: Map<string, SafeTensorInput>): void {
  m.forEach((t) => (t instanceof tf.Tensor ? t.dispose() : undefined));
}

for (const c of GOLDEN.cases) {
  test(`writer output is byte-identical to the independent golden: ${c.name}`, () => {
    const inputs = new Map(Object.entries(c.tensors).map(([n, g]) => [n, inputFor(g)] as const));
    const bytes = encodeSafetensors(inputs, c.metadata ?? undefined);
    disposeInputs(inputs);
    assert.equal(toHex(bytes), c.hex);
  });

  test(`reader decodes the golden file: ${c.name}`, () => {
    const { tensors, raw, metadata } = decodeSafetensors(Buffer.from(c.hex, 'hex'), `${c.name}.safetensors`);
    assert.deepEqual(metadata, c.metadata ?? {});
    assert.deepEqual([...tensors.keys()].sort(), Object.keys(c.tensors).sort());
    for (const [name, g] of Object.entries(c.tensors)) {
      const t = tensors.get(name)!;
      assert.deepEqual(t.shape, g.shape, name);
      assert.equal(raw.get(name)!.dtype, g.dtype);
      const want = g.decoded ?? g.values!;
      // F64 → float32 rounds; -2.5e300 overflows float32 to -Infinity, exactly as torch's .float() does.
      const expected = g.dtype === 'F64' ? want.map((x) => Math.fround(x)) : want;
      assert.deepEqual(Array.from(t.dataSync() as ArrayLike<number>), expected, name);
      assert.equal(
        t.dtype,
        g.dtype.startsWith('F') || g.dtype === 'BF16' ? 'float32' : g.dtype === 'BOOL' ? 'bool' : 'int32',
      );
    }
    tensors.forEach((t) => t.dispose());
  });
}

test('float → F16/BF16 bit conversion rounds like torch', () => {
  const half = GOLDEN.cases[0]!.tensors['half']!;
  assert.deepEqual([1.5, -2.0, 0.1].map(floatToF16Bits), half.bits);
  const brain = GOLDEN.cases[0]!.tensors['brain']!;
  assert.deepEqual([1.0, -0.1, 3.3e38, 1e-3].map(floatToBF16Bits), brain.bits);
  assert.equal(floatToF16Bits(65520), 0x7c00); // rounds up to infinity
  assert.equal(floatToF16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f16BitsToFloat(0x0001), 2 ** -24);
  assert.ok(Number.isNaN(f16BitsToFloat(floatToF16Bits(NaN))));
});

test('save → load round trip through a file, lazily by range', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
  const file = path.join(dir, 'x.safetensors');
  const inputs = new Map<string, SafeTensorInput>([
    ['w', tf.tensor([[1, 2, 3]], [1, 3])],
    ['q', { dtype: 'U8', shape: [2], data: new Uint8Array([7, 250]) }],
  ]);
  await saveSafetensors(file, inputs, { format: 'pt' });
  disposeInputs(inputs);
  assert.deepEqual(
    fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
  );
  const { tensors, metadata } = await loadSafetensors(file);
  assert.deepEqual(metadata, { format: 'pt' });
  assert.deepEqual(Array.from(tensors.get('w')!.dataSync()), [1, 2, 3]);
  assert.deepEqual(Array.from(tensors.get('q')!.dataSync()), [7, 250]);
  tensors.forEach((t) => t.dispose());
  const reader = await SafetensorsReader.open(file);
  assert.deepEqual(reader.names(), ['w', 'q']);
  const w: Tensor = await reader.readTensor('w');
  assert.deepEqual(w.shape, [1, 3]);
  w.dispose();
  await assert.rejects(reader.readRaw('nope'), /has no tensor named "nope"/);
  await reader.close();
  fs.writeFileSync(file, Buffer.from([1, 2, 3]));
  await assert.rejects(
    loadSafetensors(file),
    (e: unknown) => e instanceof CheckpointError && /too small/.test(String(e)),
  );
  fs.rmSync(dir, { recursive: true });
});

/** Builds a file from a header object (serialised as given) and `dataLen` zero bytes of data. */
function fileWith(header: unknown, dataLen: number, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function withLength(n: bigint, rest: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + rest.length);
  new DataView(out.buffer).setBigUint64(0, n, true);
  out.set(rest, 8);
  return out;
}

const f32 = (b: number, e: number, shape = [(e - b) / 4]) => ({ dtype: 'F32', shape, data_offsets: [b, e] });
const VALID = encodeSafetensors(
  new Map([['a', { dtype: 'F32' as const, shape: [2], data: new Float32Array([1, 2]) }]]),
);

const MALFORMED: [string, Uint8Array, RegExp][] = [
  ['shorter than 8 bytes', new Uint8Array(5), /header too small/],
  ['truncated data', VALID.subarray(0, VALID.length - 3), /run past the data section/],
  [
    'header length past end',
    withLength(1000n, new TextEncoder().encode('{}')),
    /runs past the end of the file/,
  ],
  [
    'header length above limit',
    withLength(200_000_000n, new Uint8Array(4)),
    /exceeds the 100000000-byte limit/,
  ],
  ['header not UTF-8', withLength(2n, new Uint8Array([0x7b, 0xff])), /not valid UTF-8/],
  ['header not starting with {', fileWith(null, 0, '[1]'), /must start with "\{"/],
  ['bad JSON', fileWith(null, 0, '{"a":'), /not valid JSON/],
  ['missing data_offsets', fileWith({ a: { dtype: 'F32', shape: [1] } }, 4), /missing field "data_offsets"/],
  ['missing dtype', fileWith({ a: { shape: [1], data_offsets: [0, 4] } }, 4), /missing field "dtype"/],
  ['bad shape', fileWith({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /shape must be/],
  [
    'unknown dtype',
    fileWith({ a: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, 4),
    /unknown dtype \(got "F12"\)/,
  ],
  [
    'unsupported dtype',
    fileWith({ a: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, 4),
    /not supported/,
  ],
  ['offsets out of range', fileWith({ a: f32(0, 8) }, 4), /run past the data section/],
  [
    'offsets reversed',
    fileWith({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4),
    /end is before begin/,
  ],
  ['overlapping', fileWith({ a: f32(0, 8), b: f32(4, 12) }, 12), /overlap the previous tensor/],
  ['gap', fileWith({ a: f32(0, 4), b: f32(8, 12) }, 12), /leave a gap/],
  ['not covering the data', fileWith({ a: f32(0, 4) }, 8), /do not cover the data section/],
  ['shape × dtype ≠ bytes', fileWith({ a: f32(0, 8, [3]) }, 8), /needs 12 bytes but data_offsets span 8/],
  [
    'metadata not a string',
    fileWith({ __metadata__: { format: 1 }, a: f32(0, 4) }, 4),
    /__metadata__.format must be a string/,
  ],
  [
    'I64 beyond int32',
    fileWith({ a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, 8),
    /does not fit in int32/,
  ],
];
// The last case needs a value beyond int32 in its data.
new DataView(MALFORMED.at(-1)![1].buffer).setBigInt64(MALFORMED.at(-1)![1].length - 8, 2n ** 40n, true);

for (const [name, bytes, rule] of MALFORMED) {
  test(`malformed file raises a CheckpointError naming the file and the fault: ${name}`, () => {
    const before = tf.memory().numTensors;
    assert.throws(
      () => decodeSafetensors(bytes, 'bad.safetensors'),
      (e: unknown) =>
        e instanceof CheckpointError && /^bad\.safetensors: /.test(e.message) && rule.test(e.message),
    );
    assert.equal(tf.memory().numTensors, before);
  });
}

test('writer rejects data whose length does not match the shape', () => {
  assert.throws(
    () => encodeSafetensors(new Map([['x', { dtype: 'F16', shape: [3], data: new Uint16Array(2) }]])),
    (e: unknown) => e instanceof CheckpointError && /"x"/.test(e.message) && /6 bytes/.test(e.message),
  );
});

test('decode copies: tensors neither alias the caller’s bytes nor need aligned offsets', () => {
  const file = encodeSafetensors(
    new Map<string, SafeTensorInput>([
      ['h', { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) }],
      ['w', { dtype: 'F32', shape: [2], data: new Float32Array([1.5, -2]) }],
    ]),
  );
  const shifted = new Uint8Array(file.length + 1);
  shifted.set(file, 1);
  const bytes = shifted.subarray(1); // odd byteOffset: no Float32Array view is possible
  const { tensors } = decodeSafetensors(bytes, 'odd.safetensors');
  bytes.fill(0);
  assert.deepEqual(Array.from(tensors.get('w')!.dataSync()), [1.5, -2]);
  assert.deepEqual(Array.from(tensors.get('h')!.dataSync()), [1]);
  tensors.forEach((t) => t.dispose());
});

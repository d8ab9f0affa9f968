/**
 * A JSON writer that reproduces Python's `json.dumps(obj, indent=2, sort_keys=True)` byte for byte
 * (PEFT config.py `to_json_string`): keys sorted recursively (UTF-16 order; equals Python's code-point order
 * except for keys mixing astral and U+E000–U+FFFF characters), two-space indent, `", "`-free separators `","`
 * + newline and `": "`, `ensure_ascii` escapes, no trailing newline, and Python's float repr (`0.0`, `0.05`,
 * `1e-05`, `32.0`, `1e+16`).
 *
 * JavaScript has one number type, so whether a value is written as an int or a float is decided by
 * the writer's caller: wrap a number in {@link PyFloat} to force float repr; a bare integer-valued
 * number is written as a Python int. Non-finite floats follow Python (`NaN`, `Infinity`).
 */

/** Marks a number that Python would hold as a `float` (written `32.0`, not `32`). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** Values the writer accepts. `undefined` entries in objects are skipped (like a missing key). */
export type PyJson =
  null | boolean | number | string | PyFloat | PyJson[] | { [key: string]: PyJson | undefined };

/**
 * Python's `repr(float)`: shortest round-trip digits; fixed notation when the decimal exponent is in
 * [-4, 16), otherwise `d.ddde±XX` with at least two exponent digits.
 *
 * @example
 * pyFloatRepr(1e-5); // '1e-05'
 * pyFloatRepr(32);   // '32.0'
 */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  // toExponential() without an argument gives the shortest digits that round-trip (ECMA-262 §21.1.3.2),
  // the same digits as Python's repr (both implement shortest round-trip).
  const [mant, expStr] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expStr);
  if (exp >= -4 && exp < 16) {
    if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    const intLen = exp + 1;
    if (digits.length <= intLen) return `${sign}${digits}${'0'.repeat(intLen - digits.length)}.0`;
    return `${sign}${digits.slice(0, intLen)}.${digits.slice(intLen)}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const e = Math.abs(exp) < 10 ? `0${Math.abs(exp)}` : String(Math.abs(exp));
  return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
}

/** Python's `json` string encoding with `ensure_ascii=True`. */
export function pyJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i]!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += ch;
  }
  return out + '"';
}

function cmpCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function write(value: PyJson, indent: string): string {
  if (value === null) return 'null';
  if (value instanceof PyFloat) return pyFloatRepr(value.value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : pyFloatRepr(value);
  if (typeof value === 'string') return pyJsonString(value);
  const inner = indent + '  ';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => inner + write(v, inner)).join(',\n')}\n${indent}]`;
  }
  const keys = Object.keys(value)
    .filter((k) => value[k] !== undefined)
    .sort(cmpCodeUnits);
  if (keys.length === 0) return '{}';
  return `{\n${keys.map((k) => `${inner}${pyJsonString(k)}: ${write(value[k] as PyJson, inner)}`).join(',\n')}\n${indent}}`;
}

/**
 * `json.dumps(value, indent=2, sort_keys=True)` as Python writes it (no trailing newline).
 *
 * @example
 * pyJsonDumps({ b: new PyFloat(0), a: [1, 'x'] });
 * // '{\n  "a": [\n    1,\n    "x"\n  ],\n  "b": 0.0\n}'
 */
export function pyJsonDumps(value: PyJson): string {
  return write(value, '');
}

/**
 * Parses JSON like `JSON.parse`, but returns numbers written as floats (`32.0`, `1e-05`) as
 * {@link PyFloat}, so a file read and written again keeps Python's int/float distinction. Accepts
 * Python's `NaN`/`Infinity` tokens.
 *
 * @example
 * pyJsonParse('{"a": 32.0, "b": 32}'); // { a: PyFloat(32), b: 32 }
 */
export function pyJsonParse(text: string): PyJson {
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`JSON: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const value = (): PyJson => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: { [k: string]: PyJson } = {};
      ws();
      if (text[i] === '}') return (i++, obj);
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i++] !== ':') fail('expected ":"');
        obj[k] = value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return (i++, obj);
        else fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const arr: PyJson[] = [];
      ws();
      if (text[i] === ']') return (i++, arr);
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return (i++, arr);
        else fail('expected "," or "]"');
      }
    }
    if (c === '"') return str();
    for (const [tok, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
      ['NaN', new PyFloat(NaN)],
      ['Infinity', new PyFloat(Infinity)],
      ['-Infinity', new PyFloat(-Infinity)],
    ] as [string, PyJson][]) {
      if (text.startsWith(tok, i)) return ((i += tok.length), v);
    }
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 64));
    if (!m) return fail('unexpected character');
    i += m[0].length;
    const n = Number(m[0]);
    return m[1] !== undefined || m[2] !== undefined ? new PyFloat(n) : n;
  };
  const str = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const out = value();
  ws();
  if (i !== text.length) fail('trailing characters');
  return out;
}

/**
 * Splits a parsed value into plain JS data and the set of dotted paths that held floats
 * (`lora_alpha`, `alpha_pattern.v_proj`), so the floats can be restored on writing.
 *
 * @example
 * splitFloats({ a: new PyFloat(32) }); // { plain: { a: 32 }, floatPaths: Set{'a'} }
 */
export function splitFloats(
  v: PyJson,
  prefix = '',
  floatPaths = new Set<string>(),
): { plain: unknown; floatPaths: Set<string> } {
  const at = (k: string | number) => (prefix ? `${prefix}.${k}` : String(k));
  if (v instanceof PyFloat) {
    floatPaths.add(prefix);
    return { plain: v.value, floatPaths };
  }
  if (Array.isArray(v))
    return { plain: v.map((x, j) => splitFloats(x, at(j), floatPaths).plain), floatPaths };
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v))
      if (x !== undefined) o[k] = splitFloats(x, at(k), floatPaths).plain;
    return { plain: o, floatPaths };
  }
  return { plain: v, floatPaths };
}

/** Wraps the numbers at `floatPaths` (as produced by {@link splitFloats}) back into {@link PyFloat}. */
export function applyFloats(v: PyJson, floatPaths: ReadonlySet<string>, prefix = ''): PyJson {
  if (floatPaths.size === 0) return v;
  const at = (k: string | number) => (prefix ? `${prefix}.${k}` : String(k));
  if (typeof v === 'number') return floatPaths.has(prefix) ? new PyFloat(v) : v;
  if (Array.isArray(v)) return v.map((x, j) => applyFloats(x, floatPaths, at(j)));
  if (v !== null && typeof v === 'object' && !(v instanceof PyFloat)) {
    const o: { [k: string]: PyJson } = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = applyFloats(x, floatPaths, at(k));
    return o;
  }
  return v;
}

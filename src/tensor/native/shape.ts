/**
 * Shape arithmetic for the native kernels: row-major strides, broadcast strides, and collapsing
 * adjacent dimensions so a kernel loops over as few, as long, rows as possible.
 */

/** Row-major strides of `shape` (elements). */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Strides with which an operand of `inShape` is read when broadcast to `outShape` (numpy rules:
 * shapes align at the end; a dim of 1 or a missing dim repeats, stride 0).
 */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const own = stridesOf(inShape);
  const lead = outShape.length - inShape.length;
  return outShape.map((dim, d) => {
    const i = d - lead;
    if (i < 0 || inShape[i] === 1) return 0;
    return own[i]!;
  });
}

/**
 * Drops size-1 dims and merges dim d into d+1 wherever every operand's stride allows it
 * (`strides[d] == strides[d+1]·shape[d+1]`, which also holds when both are 0). The result visits
 * the same elements in the same order; rank ≥ 1.
 *
 * @example
 * collapse([2, 3, 4], [[12, 4, 1], [0, 0, 1]]) // → { shape: [6, 4], strides: [[4, 1], [0, 1]] }
 */
export function collapse(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } {
  const keep = shape.map((_, d) => d).filter((d) => shape[d] !== 1);
  if (keep.length === 0) return { shape: [1], strides: strides.map(() => [0]) };
  const outShape = [shape[keep[0]!]!];
  const outStrides = strides.map((s) => [s[keep[0]!]!]);
  for (let j = 1; j < keep.length; j++) {
    const d = keep[j]!;
    const last = outShape.length - 1;
    const mergeable = strides.every((s, o) => outStrides[o]![last] === s[d]! * shape[d]!);
    if (mergeable) {
      outShape[last] = outShape[last]! * shape[d]!;
      strides.forEach((s, o) => (outStrides[o]![last] = s[d]!));
    } else {
      outShape.push(shape[d]!);
      strides.forEach((s, o) => outStrides[o]!.push(s[d]!));
    }
  }
  return { shape: outShape, strides: outStrides };
}

/** Normalises possibly negative axes against `rank`, sorted and unique. */
export function normAxes(axis: number | readonly number[] | undefined | null, rank: number): number[] {
  const list = axis == null ? [...Array(rank).keys()] : typeof axis === 'number' ? [axis] : [...axis];
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((x, y) => x - y);
}

export const int32 = (xs: readonly number[]): Int32Array => Int32Array.from(xs);

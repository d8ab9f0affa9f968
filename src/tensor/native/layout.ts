/**
 * Data-movement kernels on the addon's strided copy: Transpose, Slice, SplitV, StridedSlice, Tile,
 * PadV2, ConcatV2,
 * BroadcastTo; plus GatherV2 and UnsortedSegmentSum. Each works on 4-byte (float32/int32) and
 * bool data; anything else returns null and runs on the cpu kernel.
 */
import { allocF32 } from './kernel.js';
import { tfCore } from '../tfjs.js';
import { ShapeError } from '../../errors.js';
import type { NativeAddon } from './addon.js';
import {
  alloc,
  elemBytes,
  f32,
  isF32,
  output,
  vals,
  type NativeKernelSpec,
  type TensorInfo,
  type Values,
} from './kernel.js';
import { broadcastStrides, collapse, int32, sizeOf, stridesOf } from './shape.js';

/** Copies a `shape` box between two arrays given each side's strides and offsets. */
function copyBox(
  addon: NativeAddon,
  src: Values,
  dst: Values,
  shape: number[],
  ss: number[],
  so: number,
  ds: number[],
  dof: number,
  bytes: number,
): void {
  if (sizeOf(shape) === 0) return;
  const c = collapse(shape, [ss, ds]);
  addon.copy(src, dst, int32(c.shape), int32(c.strides[0]!), so, int32(c.strides[1]!), dof, bytes);
}

const transpose: NativeKernelSpec = {
  name: 'Transpose',
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    const bytes = elemBytes(backend, x);
    if (bytes === 0) return null;
    const perm = attrs?.perm as number[];
    const shape = perm.map((p) => x.shape[p]!);
    const src = stridesOf(x.shape);
    const out = alloc(backend, x.dtype, sizeOf(shape));
    copyBox(
      addon,
      vals(backend, x),
      out,
      shape,
      perm.map((p) => src[p]!),
      0,
      stridesOf(shape),
      0,
      bytes,
    );
    return output(backend, shape, x.dtype, out);
  },
};

const slice: NativeKernelSpec = {
  name: 'Slice',
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    const bytes = elemBytes(backend, x);
    if (bytes === 0) return null;
    const [begin, size] = tfCore.slice_util.parseSliceParams(
      x,
      attrs?.begin as number[],
      attrs?.size as number[],
    );
    const strides = stridesOf(x.shape);
    const offset = begin!.reduce((acc, b, d) => acc + b * strides[d]!, 0);
    const out = alloc(backend, x.dtype, sizeOf(size!));
    copyBox(addon, vals(backend, x), out, size!, strides, offset, stridesOf(size!), 0, bytes);
    return output(backend, size!, x.dtype, out);
  },
};

/**
 * SplitV as one strided copy per piece. The cpu kernel slices through TensorBuffer get/set for any
 * split off the first axis (RoPE's rotate-half splits the head axis): 75% of a stories260K step.
 */
const splitV: NativeKernelSpec = {
  name: 'SplitV',
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    const bytes = elemBytes(backend, x);
    if (bytes === 0) return null;
    const axis = (Number(attrs?.axis ?? 0) + x.shape.length) % Math.max(x.shape.length, 1);
    const sizes = tfCore.backend_util.prepareSplitSize(
      x as never,
      attrs?.numOrSizeSplits as number[] | number,
      axis,
    );
    const strides = stridesOf(x.shape);
    const src = vals(backend, x);
    let begin = 0;
    return sizes.map((n) => {
      const shape = [...x.shape];
      shape[axis] = n;
      const out = alloc(backend, x.dtype, sizeOf(shape));
      copyBox(addon, src, out, shape, strides, begin * strides[axis]!, stridesOf(shape), 0, bytes);
      begin += n;
      return output(backend, shape, x.dtype, out);
    });
  },
};

/**
 * StridedSlice (any strides, negative included, and every mask) as one strided copy: tfjs's
 * sliceInfo resolves the masks to per-axis begin/stride over x's own axes, so source stride =
 * x stride × slice stride; the result is then given the final (new-axis / shrink) shape.
 */
const stridedSlice: NativeKernelSpec = {
  name: 'StridedSlice',
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    const bytes = elemBytes(backend, x);
    if (bytes === 0) return null;
    const a = attrs as Record<string, number & number[]>;
    const info = tfCore.slice_util.sliceInfo(
      x.shape,
      a.begin,
      a.end,
      a.strides,
      a.beginMask,
      a.endMask,
      a.ellipsisMask,
      a.newAxisMask,
      a.shrinkAxisMask,
    );
    const box = info.finalShapeSparse;
    if (box.length !== x.shape.length) return null;
    const xs = stridesOf(x.shape);
    const offset = info.begin.reduce((acc, b, d) => acc + b * xs[d]!, 0);
    const out = alloc(backend, x.dtype, sizeOf(box));
    const src = xs.map((s, d) => s * info.strides[d]!);
    copyBox(addon, vals(backend, x), out, box, src, offset, stridesOf(box), 0, bytes);
    return output(backend, info.finalShape, x.dtype, out);
  },
};

/** Tile as a copy of shape [r0, d0, r1, d1, …] reading with stride 0 along every repeat axis. */
const tile: NativeKernelSpec = {
  name: 'Tile',
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    const bytes = elemBytes(backend, x);
    const reps = attrs?.reps as number[];
    if (bytes === 0 || reps.length !== x.shape.length) return null;
    const shape = x.shape.map((d, i) => d * reps[i]!);
    const boxShape = x.shape.flatMap((d, i) => [reps[i]!, d]);
    const src = stridesOf(x.shape).flatMap((s) => [0, s]);
    const out = alloc(backend, x.dtype, sizeOf(shape));
    copyBox(addon, vals(backend, x), out, boxShape, src, 0, stridesOf(boxShape), 0, bytes);
    return output(backend, shape, x.dtype, out);
  },
};

const broadcastTo: NativeKernelSpec = {
  name: 'BroadcastTo',
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    const bytes = elemBytes(backend, x);
    const shape = attrs?.shape as number[];
    if (bytes === 0) return null;
    const out = alloc(backend, x.dtype, sizeOf(shape));
    copyBox(
      addon,
      vals(backend, x),
      out,
      shape,
      broadcastStrides(x.shape, shape),
      0,
      stridesOf(shape),
      0,
      bytes,
    );
    return output(backend, [...shape], x.dtype, out);
  },
};

const pad: NativeKernelSpec = {
  name: 'PadV2',
  run: ({ inputs, backend, attrs }, addon) => {
    const x = inputs.x!;
    if (!isF32(backend, x)) return null;
    const paddings = attrs?.paddings as [number, number][];
    const shape = x.shape.map((d, i) => paddings[i]![0] + d + paddings[i]![1]);
    const out = allocF32(backend, sizeOf(shape)).fill(Number(attrs?.constantValue ?? 0));
    const os = stridesOf(shape);
    const offset = paddings.reduce((acc, [before], d) => acc + before * os[d]!, 0);
    copyBox(addon, f32(backend, x), out, [...x.shape], stridesOf(x.shape), 0, os, offset, 4);
    return output(backend, shape, 'float32', out);
  },
};

const concat: NativeKernelSpec = {
  name: 'Concat',
  run: ({ inputs, backend, attrs }, addon) => {
    const list = Object.values(inputs).filter((t): t is TensorInfo => t != null);
    if (list.length === 0) return null;
    const dtype = list[0]!.dtype;
    const bytes = elemBytes(backend, list[0]!);
    if (bytes === 0 || list.some((t) => t.dtype !== dtype || elemBytes(backend, t) !== bytes)) return null;
    const rank = list[0]!.shape.length;
    const axis = (Number(attrs?.axis ?? 0) + rank) % Math.max(rank, 1);
    const outer = sizeOf(list[0]!.shape.slice(0, axis));
    const widths = list.map((t) => sizeOf(t.shape.slice(axis)));
    const total = widths.reduce((a, b) => a + b, 0);
    const shape = [...list[0]!.shape];
    shape[axis] = list.reduce((acc, t) => acc + t.shape[axis]!, 0);
    const out = alloc(backend, dtype, outer * total);
    let col = 0;
    list.forEach((t, i) => {
      copyBox(addon, vals(backend, t), out, [outer, widths[i]!], [widths[i]!, 1], 0, [total, 1], col, bytes);
      col += widths[i]!;
    });
    return output(backend, shape, dtype, out);
  },
};

const gather: NativeKernelSpec = {
  name: 'GatherV2',
  run: ({ inputs, backend, attrs }, addon) => {
    const { x, indices } = inputs as { x: TensorInfo; indices: TensorInfo };
    const bytes = elemBytes(backend, x);
    const idx = vals(backend, indices);
    if (bytes === 0 || !(idx instanceof Int32Array) || Number(attrs?.batchDims ?? 0) !== 0) return null;
    const axis = (Number(attrs?.axis ?? 0) + x.shape.length) % x.shape.length;
    const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
    const outer = sizeOf(x.shape.slice(0, axis));
    const inner = sizeOf(x.shape.slice(axis + 1));
    const out = alloc(backend, x.dtype, sizeOf(shape));
    const bad = addon.gather(vals(backend, x), idx, out, outer, x.shape[axis]!, inner, bytes);
    if (bad !== -1) {
      const where = `GatherV2 (axis ${axis}, size ${x.shape[axis]})`;
      throw new ShapeError(
        where,
        `index must be in [0, ${x.shape[axis]! - 1}]`,
        bad,
        'check the ids against the table size',
      );
    }
    return output(backend, shape, x.dtype, out);
  },
};

const segmentSum: NativeKernelSpec = {
  name: 'UnsortedSegmentSum',
  run: ({ inputs, backend, attrs }, addon) => {
    const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
    const ids = vals(backend, segmentIds);
    if (!isF32(backend, x) || !(ids instanceof Int32Array) || segmentIds.shape.length !== 1) return null;
    const numSegments = Number(attrs?.numSegments);
    const inner = sizeOf(x.shape.slice(1));
    const out = allocF32(backend, numSegments * inner).fill(0); // the kernel accumulates
    addon.segmentSum(f32(backend, x), ids, out, numSegments, inner);
    return output(backend, [numSegments, ...x.shape.slice(1)], 'float32', out);
  },
};

export const layoutKernels: NativeKernelSpec[] = [
  transpose,
  slice,
  splitV,
  stridedSlice,
  tile,
  broadcastTo,
  pad,
  concat,
  gather,
  segmentSum,
];

/**
 * Comparing numbers in tests: the one `maxDiff` every test uses, so a length mismatch or a NaN can
 * never pass a tolerance check by accident.
 */

/**
 * The largest element-wise |a[i] − b[i]|. Throws when the lengths differ (comparing a prefix hides a
 * shape bug); a NaN on either side gives NaN, which fails every `<= tolerance` check. 0 for two empty
 * arrays.
 *
 * @example assert.ok(maxDiff(merged, unmerged) <= MERGE_ATOL);
 * @example maxDiff([1, 2], [1, 2.5]); // 0.5
 */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxDiff: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return NaN;
    if (d > m) m = d;
  }
  return m;
}

/** Tiny SVG helpers for the page's charts (plain DOM, no framework). */
const NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element with attributes. */
export function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  text?: string,
): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Formats a number compactly for axis labels (3 significant digits). */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1000 ? x.toExponential(1) : Number(x.toPrecision(3)).toString();
}

/** Where the CLI writes: results to stdout, progress and diagnostics to stderr (so stdout pipes cleanly). */
export interface CliIO {
  out(line: string): void;
  err(line: string): void;
  /** True when stderr is a terminal (progress bars redraw in place only then). */
  readonly interactive: boolean;
}

/** The process's own streams. */
export const processIO: CliIO = {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  interactive: Boolean(process.stderr.isTTY),
};

/**
 * Formats rows as an aligned plain-text table.
 * @example table(['a', 'b'], [[1, 2]]); // 'a  b\n-  -\n1  2'
 */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(fmt)].join('\n');
}

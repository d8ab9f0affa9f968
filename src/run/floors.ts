/**
 * The import floors of the code base (docs/CONVENTIONS.md "Layout and imports"): a file may import
 * from its own floor or any floor below, never from a floor above. `tests/import_floors.test.ts`
 * parses every import under src/ and web/ and fails on an upward one.
 *
 *   0 tensor, util, errors.ts      4 training
 *   1 io                           5 run (+ report: it sits on training)
 *   2 nn                           6 front ends: cli, serve, web, harness, index.ts (+ testing: test
 *   3 models, tuners                 support that drives the CLI, the server and the page; not shipped)
 */
export const FLOORS: Record<string, number> = {
  tensor: 0,
  util: 0,
  'errors.ts': 0,
  io: 1,
  nn: 2,
  models: 3,
  tuners: 3,
  training: 4,
  run: 5,
  report: 5,
  testing: 6, // test support (not shipped): tiny models, suites, and drivers of the CLI, server, page
  cli: 6,
  serve: 6,
  harness: 6,
  'index.ts': 6,
  web: 6,
};

/**
 * The floor of a path relative to the repository root (`src/tuners/lora/layer.ts` → 3,
 * `web/engine/session.ts` → 6), or undefined outside src/ and web/.
 * @example floorOf('src/run/methods.ts'); // 5
 */
export function floorOf(relPath: string): number | undefined {
  const parts = relPath.split('/');
  if (parts[0] === 'web') return FLOORS.web;
  if (parts[0] !== 'src' || parts.length < 2) return undefined;
  return FLOORS[parts[1]!];
}

/**
 * The module specifiers a TypeScript source imports (static `import`/`export … from`, side-effect
 * `import '…'` and dynamic `import('…')`), each with whether it is type-only.
 * @example importsOf("import type { A } from './a.js';"); // [{ spec: './a.js', typeOnly: true }]
 */
export function importsOf(source: string): { spec: string; typeOnly: boolean }[] {
  const out: { spec: string; typeOnly: boolean }[] = [];
  const stat = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/g;
  for (const m of source.matchAll(stat)) out.push({ spec: m[3]!, typeOnly: Boolean(m[2]) });
  for (const m of source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g))
    out.push({ spec: m[1]!, typeOnly: false });
  return out;
}

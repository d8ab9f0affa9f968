#!/usr/bin/env node
// The `lowrank` command: runs the compiled JavaScript in dist/ (built by `npm run build`, which npm runs
// on install from a clone and before `npm pack`). No TypeScript loader is needed at run time.
// Inside a clone, `npm run lowrank -- <command>` runs the sources directly (tsx, no build step).
// Exit codes: 0 ok, 1 runtime error, 2 usage error.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/bin.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    'lowrank: the compiled CLI (dist/cli/bin.js) is missing. Inside a clone run `npm run build` once, ' +
      'or run the sources without a build: npm run lowrank -- <command>\n',
  );
  process.exit(1);
}
await import(entry.href);

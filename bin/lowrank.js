#!/usr/bin/env node
// The `lowrank` command: runs the TypeScript sources through tsx's ESM loader (no build step needed),
// then hands argv to src/cli/main.ts. Exit codes: 0 ok, 1 runtime error, 2 usage error.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;

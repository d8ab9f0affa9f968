/**
 * `lowrank <command> [options]`: dispatch, `--help` for every command, and exit codes: 0 ok,
 * 1 runtime error (bad files, training failures; one clear line, no stack unless LOWRANK_DEBUG=1),
 * 2 usage error (unknown command, flag or config key; bad flag value).
 */
import { helpText, nearest, parseArgs, UsageError } from './args.js';
import { processIO, type CliIO } from './io.js';
import type { Command } from './command.js';
import { LowrankError } from '../errors.js';
import { COMMANDS } from './commands/index.js';
import { checkRanges, toCliError } from './flags.js';

function overview(): string {
  const lines = [
    'lowrank: parameter-efficient fine-tuning (AdaLoRA, LoRA, DoRA, QLoRA, HyperLoRA) for transformers',
    '',
    'Usage: lowrank <command> [options]',
    '',
    'Commands:',
  ];
  for (const c of COMMANDS) lines.push(`  ${c.spec.name.padEnd(12)} ${c.spec.summary}`);
  lines.push(
    '',
    'Run `lowrank <command> --help` for options and examples.',
    'Start here: npm run demo   (or: lowrank recommend)',
  );
  return lines.join('\n');
}

/**
 * Runs one CLI invocation and returns the exit code.
 * @example process.exitCode = await main(['info']);
 */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    if (name === 'help' && rest[0]) return main([rest[0], '--help'], io);
    io.out(overview());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v') {
    const { LOWRANK_VERSION } = await import('../tensor/backend.js');
    io.out(LOWRANK_VERSION);
    return 0;
  }
  const cmd: Command | undefined = COMMANDS.find((c) => c.spec.name === name);
  try {
    if (!cmd) {
      const near = nearest(
        name,
        COMMANDS.map((c) => c.spec.name),
      );
      throw new UsageError(
        `unknown command "${name}"${near ? `; did you mean "${near}"?` : ''} (run lowrank --help)`,
      );
    }
    const parsed = parseArgs(cmd.spec, rest);
    if (parsed.help) {
      io.out(helpText(cmd.spec));
      return 0;
    }
    checkRanges(parsed.values);
    return (await cmd.run(parsed, io)) ?? 0;
  } catch (thrown) {
    const e = toCliError(thrown);
    if (e instanceof UsageError) {
      io.err(`lowrank: ${e.message}`);
      return 2;
    }
    if (e instanceof LowrankError) {
      io.err(`lowrank ${name}: ${e.message}`);
      if (process.env.LOWRANK_DEBUG) io.err((e as Error).stack ?? '');
      return 1;
    }
    const err = e as Error;
    io.err(`lowrank ${name}: ${err.name === 'InternalError' ? '' : 'error: '}${err.message}`);
    if (process.env.LOWRANK_DEBUG || err.name === 'InternalError') io.err(err.stack ?? '');
    return 1;
  }
}

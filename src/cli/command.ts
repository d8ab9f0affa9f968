import type { CommandSpec, Parsed } from './args.js';
import type { CliIO } from './io.js';

/** One `lowrank` subcommand: its flags/help and what it does (returns the exit code, default 0). */
export interface Command {
  spec: CommandSpec;
  run(parsed: Parsed, io: CliIO): Promise<number | void>;
}

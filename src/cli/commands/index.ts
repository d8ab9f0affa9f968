import type { Command } from '../command.js';
import { infoCommand } from './info.js';
import { inspectCommand } from './inspect.js';
import { recommendCommand } from './recommend.js';
import { trainCommand } from './train.js';
import { materializeCommand } from './materialize.js';
import { experimentCommand } from './experiment.js';
import { serveCommand } from './serve.js';
import { demoCommand } from '../demo/command.js';
import {
  convertCommand,
  evalCommand,
  generateCommand,
  mergeCommand,
  reportCommand,
} from './model_commands.js';

/** Every `lowrank` subcommand, in the order `lowrank --help` lists them. */
export const COMMANDS: Command[] = [
  demoCommand,
  trainCommand,
  evalCommand,
  generateCommand,
  serveCommand,
  mergeCommand,
  materializeCommand,
  inspectCommand,
  reportCommand,
  experimentCommand,
  convertCommand,
  infoCommand,
  recommendCommand,
];

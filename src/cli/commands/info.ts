/** `lowrank info`: version, compute backend in use (and why faster ones were passed over), addon, BLAS, threads. */
import type { Command } from '../command.js';
import { table } from '../io.js';

export const infoCommand: Command = {
  spec: {
    name: 'info',
    summary: 'Show the lowrank version and the compute backend in use (native addon, BLAS, threads)',
    options: [
      {
        name: 'backend',
        type: 'string',
        description: 'backend to try',
        default: 'auto',
        choices: ['auto', 'native', 'wasm', 'cpu'],
      },
      { name: 'json', type: 'boolean', description: 'print machine-readable JSON', default: false },
    ],
    examples: ['lowrank info', 'lowrank info --backend wasm', 'lowrank info --json'],
  },
  async run(p, io) {
    const { initBackend, backendInfo } = await import('../../tensor/backend.js');
    const report = await initBackend(p.values.backend as string);
    const info = backendInfo();
    if (p.values.json) {
      io.out(JSON.stringify({ ...info, tried: report.tried }, null, 2));
      return;
    }
    io.out(`lowrank ${info.version} (tfjs-core ${info.tfjsVersion}, node ${process.versions.node})`);
    io.out(`backend in use: ${info.backend}`);
    io.out(
      `native addon: ${info.addonLoaded ? 'loaded' : `not loaded (${info.addonError ?? 'unknown reason'})`}`,
    );
    io.out(`BLAS: ${info.blas ?? 'none (addon not loaded)'}`);
    io.out(`threads: ${info.threads}`);
    io.out('');
    io.out(
      table(
        ['backend', 'status'],
        report.tried.map((t) => [t.name, t.ok ? 'ok (selected)' : `skipped: ${t.reason}`]),
      ),
    );
  },
};

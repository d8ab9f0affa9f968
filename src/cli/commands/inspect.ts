/** `lowrank inspect <adapter>`: method, ranks per module, parameter counts, rank pattern as a table. */
import type { Command } from '../command.js';
import { table } from '../io.js';
import { rankGrid, readAdapterSummary } from '../../report/ranks.js';

export const inspectCommand: Command = {
  spec: {
    name: 'inspect',
    summary: 'Show an adapter: method, ranks per module, parameter counts, the rank pattern',
    positionals: [
      {
        name: 'adapter',
        description: 'PEFT adapter folder (adapter_config.json + adapter_model.safetensors)',
        required: true,
      },
    ],
    options: [{ name: 'json', type: 'boolean', description: 'print machine-readable JSON', default: false }],
    examples: ['lowrank inspect runs/demo-adalora/adapter', 'lowrank inspect ./my-adapter --json'],
  },
  async run(p, io) {
    const s = await readAdapterSummary(p.positionals[0]!);
    if (p.values.json) {
      io.out(
        JSON.stringify(
          { method: s.method, totalParams: s.totalParams, otherParams: s.otherParams, modules: s.modules },
          null,
          2,
        ),
      );
      return;
    }
    const c = s.config;
    io.out(
      `method: ${s.method}${c.use_dora ? ' (DoRA)' : ''}   task: ${c.task_type ?? '-'}   base: ${c.base_model_name_or_path ?? '-'}`,
    );
    const r =
      s.method === 'ADALORA'
        ? `init_r ${c.init_r}, target_r ${c.target_r}, total_step ${c.total_step}`
        : `r ${c.r}`;
    io.out(`${r}, lora_alpha ${c.lora_alpha}, target_modules ${JSON.stringify(c.target_modules)}`);
    const kept = s.modules.reduce((a, m) => a + m.rank, 0);
    const alloc = s.modules.reduce((a, m) => a + m.allocated, 0);
    io.out(
      `adapted modules: ${s.modules.length}   total rank kept: ${kept} of ${alloc}   parameters: ${s.totalParams.toLocaleString('en-US')} (${s.otherParams.toLocaleString('en-US')} outside adapters)`,
    );
    io.out('');
    io.out(
      table(
        ['module', 'rank', 'allocated', 'params'],
        s.modules.map((m) => [m.path, m.rank, m.allocated, m.params]),
      ),
    );
    const g = rankGrid(s.modules);
    if (g.layers.length > 1) {
      io.out('');
      io.out('rank pattern (layers × module type):');
      io.out(
        table(
          ['layer', ...g.types],
          g.layers.map((l, i) => [l < 0 ? '-' : l, ...g.cells[i]!.map((v) => (v === undefined ? '.' : v))]),
        ),
      );
    }
  },
};

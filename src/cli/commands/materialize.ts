/**
 * `lowrank materialize`: exports the LoRA adapter a trained HyperLoRA hypernetwork generates for one
 * condition as a plain PEFT folder (adapter_config.json + adapter_model.safetensors), usable by every
 * other command (`eval`, `generate`, `merge`) and by Python PEFT.
 */
import fs from 'node:fs';
import type { Command } from '../command.js';
import { UsageError } from '../args.js';
import { ADAPTER, BACKEND, MODEL, need } from './model_commands.js';

export const materializeCommand: Command = {
  spec: {
    name: 'materialize',
    summary: 'Export one condition of a HyperLoRA hypernetwork as a plain PEFT LoRA adapter folder',
    options: [
      MODEL,
      { ...ADAPTER, description: "HyperLoRA hypernetwork folder (a --method hyperlora run's adapter/)" },
      {
        name: 'condition',
        type: 'string',
        description: 'the condition to export: a name given to --conditions, or an id',
      },
      { name: 'output', short: 'o', type: 'string', description: 'folder for the PEFT LoRA adapter' },
      {
        name: 'task',
        type: 'string',
        description: 'head the base model is loaded with (the adapted layers do not depend on it)',
        default: 'causal_lm',
        choices: ['causal_lm', 'classification'],
      },
      BACKEND,
    ],
    examples: [
      'lowrank materialize -m stories260K.bin --adapter runs/hyper/adapter --condition shakespeare -o adapters/shakespeare',
      'lowrank generate -m stories260K.bin --adapter adapters/shakespeare -p "ROMEO:"',
    ],
  },
  async run(p, io) {
    const v = p.values;
    const out = need(v, 'output', 'folder for the PEFT LoRA adapter');
    const dir = need(v, 'adapter', 'the HyperLoRA hypernetwork folder');
    const { isHyperLoraFolder, loadHyperAsLora } = await import('../../run/hyperlora.js');
    if (!fs.existsSync(dir)) throw new UsageError(`--adapter: ${dir} does not exist`);
    if (!(await isHyperLoraFolder(dir)))
      throw new UsageError(
        `--adapter: ${dir} holds no hyperlora_config.json; materialize reads a HyperLoRA hypernetwork (train --method hyperlora)`,
      );
    if (fs.existsSync(out) && fs.readdirSync(out).length > 0)
      throw new UsageError(`--output: ${out} exists and is not empty; choose a new folder`);
    const { initBackend } = await import('../../tensor/backend.js');
    await initBackend(v.backend as string);
    const { loadModel } = await import('../../models/load.js');
    const base = await loadModel(need(v, 'model', 'the base model the hypernetwork was trained on'), {
      task: v.task === 'classification' ? 'SEQ_CLS' : 'CAUSAL_LM',
      seed: 0,
    });
    const { peft, condition, names } = await loadHyperAsLora(base, dir, v.condition as string | undefined);
    try {
      await peft.savePretrained(out);
    } finally {
      peft.dispose();
    }
    io.out(
      `condition ${names ? `"${names[condition]}" (id ${condition})` : condition} written to ${out}: ${fs.readdirSync(out).sort().join(', ')}`,
    );
  },
};

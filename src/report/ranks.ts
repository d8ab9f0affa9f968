/**
 * Reads a PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`) into per-module
 * ranks and parameter counts, and arranges them as a layers × module-type grid: what `lowrank
 * inspect` prints and what the report's rank heatmap draws.
 */
import { CheckpointError } from '../errors.js';
import { joinPath, pathExists, readJson } from '../io/source.js';
import { SafetensorsReader } from '../io/safetensors.js';

export interface ModuleRank {
  /** Module path inside the base model (`model.layers.0.self_attn.q_proj`). */
  path: string;
  /** Layer index parsed from the path, or -1 when it has none. */
  layer: number;
  /** Last path component (`q_proj`, `value`, `dense`, …). */
  type: string;
  /** Kept rank (AdaLoRA: true entries of the rank pattern, else rows of lora_A/lora_E). */
  rank: number;
  /** Allocated (initial) rank: lora_A rows. */
  allocated: number;
  /** Parameters stored for this module. */
  params: number;
}

export interface AdapterSummary {
  method: string;
  config: Record<string, unknown>;
  modules: ModuleRank[];
  totalParams: number;
  /** Other saved tensors (modules_to_save heads, biases). */
  otherParams: number;
}

const PREFIX = 'base_model.model.';
const LORA_PART =
  /\.(lora_A|lora_B|lora_E|lora_magnitude_vector|lora_embedding_A|lora_embedding_B)(\.weight)?$/;

/**
 * @example const s = await readAdapterSummary('runs/demo/adapter'); s.modules[0].rank;
 */
export async function readAdapterSummary(dir: string): Promise<AdapterSummary> {
  const cfgPath = joinPath(dir, 'adapter_config.json');
  const wPath = joinPath(dir, 'adapter_model.safetensors');
  if (!(await pathExists(cfgPath)))
    throw new CheckpointError(
      dir,
      'is not a PEFT adapter folder (no adapter_config.json)',
      undefined,
      'pass the folder written by savePretrained / lowrank train (<run>/adapter)',
    );
  const config = (await readJson(cfgPath)) as Record<string, unknown>;
  if (!(await pathExists(wPath)))
    throw new CheckpointError(
      dir,
      'has no adapter_model.safetensors',
      undefined,
      'the adapter folder is incomplete',
    );
  const reader = await SafetensorsReader.open(wPath);
  const byModule = new Map<string, { a?: number[]; params: number; e?: number[] }>();
  let otherParams = 0;
  try {
    for (const name of reader.names()) {
      const shape = reader.info(name).shape;
      const n = shape.reduce((x, y) => x * y, 1);
      const m = LORA_PART.exec(name);
      if (!m) {
        otherParams += n;
        continue;
      }
      const path = name.slice(0, m.index).replace(PREFIX, '');
      const entry = byModule.get(path) ?? { params: 0 };
      entry.params += n;
      if (m[1] === 'lora_A' || m[1] === 'lora_embedding_A') entry.a = shape;
      if (m[1] === 'lora_E') entry.e = shape;
      byModule.set(path, entry);
    }
  } finally {
    await reader.close();
  }
  const pattern = (config.rank_pattern ?? null) as Record<string, boolean[]> | null;
  const modules: ModuleRank[] = [...byModule.entries()].map(([path, e]) => {
    const stored = e.a?.[0] ?? e.e?.[0] ?? 0;
    // AdaLoRA files are trimmed to the kept rank; the allocated rank is the config's init_r
    const allocated =
      String(config.peft_type) === 'ADALORA' && typeof config.init_r === 'number' ? config.init_r : stored;
    let rank = stored;
    const key = pattern
      ? Object.keys(pattern).find(
          (k) => k === `${path}.lora_E` || k.replace(/^base_model\.model\./, '') === `${path}.lora_E`,
        )
      : undefined;
    if (pattern && key) rank = pattern[key]!.filter(Boolean).length;
    const layerMatch = /\.(\d+)\./.exec(path);
    return {
      path,
      layer: layerMatch ? Number(layerMatch[1]) : -1,
      type: path.slice(path.lastIndexOf('.') + 1),
      rank,
      allocated,
      params: e.params,
    };
  });
  modules.sort((a, b) => a.layer - b.layer || a.type.localeCompare(b.type));
  return {
    method: String(config.peft_type ?? 'unknown'),
    config,
    modules,
    totalParams: modules.reduce((s, m) => s + m.params, 0) + otherParams,
    otherParams,
  };
}

/**
 * Layers × module types grid of ranks (undefined where a layer has no such module).
 * @example const g = rankGrid(summary.modules); g.cells[layer][typeIndex];
 */
export function rankGrid(modules: ModuleRank[]): {
  layers: number[];
  types: string[];
  cells: (number | undefined)[][];
} {
  const layers = [...new Set(modules.map((m) => m.layer))].sort((a, b) => a - b);
  const types = [...new Set(modules.map((m) => m.type))];
  const cells = layers.map((l) =>
    types.map((t) =>
      modules
        .filter((m) => m.layer === l && m.type === t)
        .reduce<number | undefined>((s, m) => (s ?? 0) + m.rank, undefined),
    ),
  );
  return { layers, types, cells };
}

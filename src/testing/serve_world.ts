/**
 * Fixtures of the server tests: a tiny Llama folder with the demo's character tokenizer and a chat
 * template, and an adapters folder with LoRA, DoRA and AdaLoRA adapters (seeded, perturbed so each
 * changes the output), a corrupted one and a symlink that escapes the folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { modelFromConfig } from '../models/from_config.js';
import { loadModel } from '../models/load.js';
import { CHAR_VOCAB, charLlamaConfig, saveCharModel } from './char_llama.js';
import { manualSeed } from '../nn/init.js';
import { getPeftModel, PeftModel, type PeftConfig } from '../tuners/index.js';
import { LoraConfig } from '../tuners/lora/index.js';
import { AdaLoraConfig } from '../tuners/adalora/index.js';
import { perturbAdapter } from './tuner_matrix.js';
import { generate } from '../models/generate.js';
import { loadTokenizer } from '../io/tokenizer.js';
import type { PreTrainedModel } from '../models/base.js';
import { Rng } from '../util/rng.js';
import { tf } from '../tensor/tf.js';
import OpenAI from 'openai';
import { createServer, type LowrankServer, type ServeOptions } from '../serve/index.js';

export const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-serve-'));

/** A ChatML-like template (the tokenizer has no special chat tokens, so plain text markers). */
export const CHAT_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

export interface World {
  dir: string;
  model: string;
  adapters: string;
}

/**
 * Tiny 2-layer Llama (32 wide) + adapters lora_a, lora_b (different targets), lora_norm (with a
 * modules_to_save copy of the final norm), dora, adalora, broken.
 */
export async function serveWorld(opts: { hidden?: number; layers?: number } = {}): Promise<World> {
  const dir = tmp();
  const model = path.join(dir, 'model');
  manualSeed(0);
  const m = modelFromConfig(
    charLlamaConfig({
      hidden_size: opts.hidden ?? 32,
      intermediate_size: 2 * (opts.hidden ?? 32),
      num_hidden_layers: opts.layers ?? 2,
      num_attention_heads: 4,
      max_position_embeddings: 256,
      eos_token_id: 2,
    }),
    { task: 'CAUSAL_LM' },
  );
  // demo init (std 0.02) gives near-uniform logits; scaled-up weights give decisive, varied text
  const rng = new Rng(11);
  for (const [, p] of m.namedParameters()) {
    if (p.rank !== 2) continue;
    const std = p.shape[0] === CHAR_VOCAB ? 1 : 1.5 / Math.sqrt(p.shape[1]!);
    const t = tf.tensor(rng.normalArray(p.size, 0, std), p.shape, 'float32');
    p.assign(t);
    t.dispose();
  }
  await saveCharModel(m, model);
  m.dispose();
  fs.writeFileSync(
    path.join(model, 'tokenizer_config.json'),
    JSON.stringify({ chat_template: CHAT_TEMPLATE, bos_token: '', eos_token: '' }),
  );
  const adapters = path.join(dir, 'adapters');
  fs.mkdirSync(adapters);
  const mk = async (name: string, config: PeftConfig, seed: number) => {
    const base = await loadModel(model, { seed: 0 });
    const peft = getPeftModel(base, config);
    perturbAdapter(peft as never, seed, 0.3);
    await peft.savePretrained(path.join(adapters, name));
    peft.dispose();
  };
  await mk('lora_a', new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'] }), 1);
  await mk('lora_b', new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['o_proj', 'down_proj'] }), 2);
  await mk(
    'lora_norm',
    new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['up_proj'], modulesToSave: ['norm'] }),
    5,
  );
  await mk(
    'dora',
    new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'up_proj'], useDora: true }),
    3,
  );
  await mk(
    'adalora',
    new AdaLoraConfig({
      initR: 4,
      targetR: 2,
      totalStep: 100,
      tinit: 10,
      tfinal: 20,
      deltaT: 5,
      targetModules: ['k_proj', 'gate_proj'],
    }),
    4,
  );
  // a folder whose weights file is cut short
  fs.cpSync(path.join(adapters, 'lora_a'), path.join(adapters, 'broken'), { recursive: true });
  const w = path.join(adapters, 'broken', 'adapter_model.safetensors');
  fs.writeFileSync(w, fs.readFileSync(w).subarray(0, 40));
  // an adapter outside the folder, reachable only through a symlink
  fs.cpSync(path.join(adapters, 'lora_a'), path.join(dir, 'outside'), { recursive: true });
  fs.symlinkSync(path.join(dir, 'outside'), path.join(adapters, 'escape'));
  return { dir, model, adapters };
}

/**
 * What `lowrank generate` computes for a prompt: the adapter merged into the base, greedy decoding
 * with the library's `generate`. Returns the new ids and their text.
 */
export async function libraryGreedy(
  world: World,
  adapter: string | null,
  prompt: string,
  maxNewTokens: number,
): Promise<{ ids: number[]; text: string }> {
  const tok = await loadTokenizer(path.join(world.model, 'tok.bin'));
  const base = await loadModel(world.model, { seed: 0 });
  await import('../tuners/adalora/index.js');
  const model = adapter
    ? ((
        await PeftModel.fromPretrained(base, path.join(world.adapters, adapter))
      ).mergeAndUnload() as PreTrainedModel)
    : base;
  const ids = await generate(model, tok.encode(prompt), {
    maxNewTokens,
    temperature: 0,
    eosTokenId: tok.eosTokenId,
  });
  model.dispose();
  return { ids, text: tok.decode(ids, { skipSpecialTokens: true }) };
}

/** An `openai` client for the server at `url` (no retries, so a refused request fails at once). */
export function openaiClient(url: string, apiKey = 'x'): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 });
}

/**
 * A listening server on a free port without logs over `base` (a world, or a model path or loaded model
 * with an optional adapters folder), `opts` on top, and a client with the server's key.
 *
 * @example
 * const { server, client } = await startServer(world, { maxActive: 2 });
 */
export async function startServer(
  base: { model: ServeOptions['model']; adapters?: string },
  opts: Partial<ServeOptions> = {},
): Promise<{ server: LowrankServer; client: OpenAI; url: string }> {
  const server = await createServer({
    model: base.model,
    ...(base.adapters !== undefined ? { adapters: base.adapters } : {}),
    port: 0,
    logger: false,
    ...opts,
  });
  const url = await server.listen();
  return { server, client: openaiClient(url, opts.apiKey), url };
}

/**
 * A greedy completion through the server; each choice's ids are read exactly from its logprobs
 * (`token_id:<id>`).
 *
 * @example
 * const [{ ids }] = (await serverGreedy(client, 'lora_a', '1+1=', 8)).choices;
 */
export async function serverGreedy(
  client: OpenAI,
  model: string,
  prompt: string,
  maxTokens: number,
  n = 1,
): Promise<{ choices: { ids: number[]; text: string }[]; usage: OpenAI.CompletionUsage }> {
  const r = await client.completions.create({
    model,
    prompt,
    max_tokens: maxTokens,
    temperature: 0,
    n,
    logprobs: 0,
    return_tokens_as_token_ids: true,
  } as never);
  return {
    choices: r.choices.map((c) => ({
      ids: c.logprobs!.tokens!.map((t) => Number(t.slice('token_id:'.length))),
      text: c.text,
    })),
    usage: r.usage!,
  };
}

/**
 * `lowrank serve`: the OpenAI-compatible server (src/serve) over one base model and a folder of PEFT
 * adapters. Runs until SIGINT/SIGTERM, then shuts down gracefully (running requests get `--grace`
 * seconds, the rest are cancelled). Logs are JSON lines (pino) on stdout.
 */
import fs from 'node:fs';
import type { Command } from '../command.js';
import { UsageError } from '../args.js';
import { BACKEND, MODEL, need } from './model_commands.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export const serveCommand: Command = {
  spec: {
    name: 'serve',
    summary: 'Serve a base model and a folder of adapters over an OpenAI-compatible HTTP API',
    options: [
      MODEL,
      {
        name: 'adapters',
        type: 'string',
        description: 'folder of PEFT adapter folders; each subfolder name is a model name',
      },
      { name: 'tokenizer', type: 'string', description: 'tokenizer (default: beside the model)' },
      {
        name: 'host',
        type: 'string',
        description: 'address to bind (loopback unless told)',
        default: '127.0.0.1',
      },
      { name: 'port', type: 'int', description: 'port (0: any free port)', default: 8000 },
      {
        name: 'api-key',
        type: 'string',
        description: 'require Authorization: Bearer <key> (default: $LOWRANK_API_KEY if set)',
      },
      { name: 'max-active', type: 'int', description: 'sequences decoding together', default: 16 },
      { name: 'max-queue', type: 'int', description: 'requests waiting before 429', default: 64 },
      { name: 'max-tokens', type: 'int', description: 'largest max_tokens of a request', default: 512 },
      { name: 'max-n', type: 'int', description: 'largest n (choices × prompts) of a request', default: 8 },
      { name: 'body-limit-kb', type: 'int', description: 'request body limit (413 beyond)', default: 1024 },
      { name: 'timeout', type: 'number', description: 'per-request timeout in seconds (504)', default: 120 },
      {
        name: 'adapter-cache-mb',
        type: 'number',
        description: 'adapter weights kept loaded (LRU)',
        default: 256,
      },
      { name: 'grace', type: 'number', description: 'seconds running requests get at shutdown', default: 10 },
      {
        name: 'log-level',
        type: 'string',
        description: 'log level',
        default: 'info',
        choices: ['fatal', 'error', 'warn', 'info', 'debug', 'silent'],
      },
      BACKEND,
    ],
    configFile: true,
    examples: [
      'lowrank serve -m stories260K.bin --adapters adapters/',
      'lowrank serve -m ./my-llama --adapters adapters/ --port 8080 --api-key "$KEY" --max-active 32',
      'curl http://127.0.0.1:8000/v1/completions -H "content-type: application/json" -d \'{"model":"shakespeare","prompt":"ROMEO:","max_tokens":32}\'',
    ],
  },
  async run(p, io) {
    const v = p.values;
    const model = need(v, 'model', 'a Hugging Face folder or llama2.c .bin');
    const adapters = v.adapters as string | undefined;
    if (adapters !== undefined && !fs.statSync(adapters, { throwIfNoEntry: false })?.isDirectory())
      throw new UsageError(`--adapters: ${adapters} is not a folder`);
    const port = v.port as number;
    const host = v.host as string;
    const apiKey = (v['api-key'] as string | undefined) ?? process.env.LOWRANK_API_KEY;
    if (!LOOPBACK.has(host) && !apiKey)
      io.err(
        `lowrank serve: warning: listening on ${host} without --api-key; anyone who can reach it can use it`,
      );
    const { createServer } = await import('../../serve/server.js');
    const server = await createServer({
      model,
      ...(v.tokenizer ? { tokenizer: v.tokenizer as string } : {}),
      ...(adapters ? { adapters } : {}),
      host,
      port,
      ...(apiKey ? { apiKey } : {}),
      maxActive: v['max-active'] as number,
      maxQueue: v['max-queue'] as number,
      maxTokens: v['max-tokens'] as number,
      maxN: v['max-n'] as number,
      bodyLimit: (v['body-limit-kb'] as number) * 1024,
      requestTimeoutMs: (v.timeout as number) * 1000,
      adapterCacheBytes: Math.floor((v['adapter-cache-mb'] as number) * 2 ** 20),
      logger: { level: v['log-level'] as string },
      backend: v.backend as string,
    });
    const url = await server.listen();
    io.err(
      `lowrank serve: ${url} (model ${model}${adapters ? `, adapters from ${adapters}` : ''}); Ctrl-C stops`,
    );
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    io.err(`lowrank serve: ${signal}: finishing running requests (up to ${v.grace} s)`);
    await server.close((v.grace as number) * 1000);
    io.err('lowrank serve: stopped');
  },
};

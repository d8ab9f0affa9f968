/**
 * Chat prompts from the model's own chat template (`chat_template` in tokenizer_config.json, a Jinja
 * template as transformers' `apply_chat_template` renders it, with `add_generation_prompt`), rendered
 * with @huggingface/jinja. A model without one gets a clear 400 instead of a guessed format.
 *
 * @example
 * const t = await readChatTemplate('./my-model');
 * const text = renderChat(t!, [{ role: 'user', content: 'Hi' }]);
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { ApiError } from './errors.js';
import type { ChatMessage } from './requests.js';

export interface ChatTemplate {
  template: Template;
  bosToken: string;
  eosToken: string;
}

function tokenText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string')
    return (v as { content: string }).content; // AddedToken form
  return '';
}

/**
 * The chat template of a model folder (or of the folder holding a model file), or undefined when the
 * model has none. A template that does not parse is an error naming the file.
 */
export async function readChatTemplate(modelPath: string): Promise<ChatTemplate | undefined> {
  const dir = (await fs.stat(modelPath)).isDirectory() ? modelPath : path.dirname(modelPath);
  const file = path.join(dir, 'tokenizer_config.json');
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  let source = cfg.chat_template;
  if (Array.isArray(source)) {
    // transformers also allows a list of named templates: use "default"
    source = (source as { name?: string; template?: string }[]).find((t) => t.name === 'default')?.template;
  }
  if (typeof source !== 'string') return undefined;
  return {
    template: new Template(source),
    bosToken: tokenText(cfg.bos_token),
    eosToken: tokenText(cfg.eos_token),
  };
}

/** The prompt text for `messages`, ending with the assistant's turn opening. */
export function renderChat(t: ChatTemplate | undefined, messages: ChatMessage[]): string {
  if (!t) {
    throw new ApiError(
      400,
      'this model has no chat template (no chat_template in tokenizer_config.json); use POST /v1/completions with a plain prompt, or add a chat_template to the model folder',
      'invalid_request_error',
      'messages',
      'no_chat_template',
    );
  }
  try {
    return t.template.render({
      messages,
      add_generation_prompt: true,
      bos_token: t.bosToken,
      eos_token: t.eosToken,
    });
  } catch (e) {
    throw new ApiError(
      400,
      `the model's chat template rejected these messages: ${e instanceof Error ? e.message : String(e)}`,
      'invalid_request_error',
      'messages',
      'chat_template_error',
    );
  }
}

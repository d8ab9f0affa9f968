/**
 * `POST /v1/classify {model, input}` for a sequence-classification base model: each input text runs
 * through the base with the named adapter (its classification head from `modules_to_save` included)
 * and gets the arg-max label and the softmax score of every label (`id2label` names, else LABEL_i).
 *
 * @example // → { object: 'list', data: [{ index: 0, label: 'positive', scores: { negative: 0.1, positive: 0.9 } }] }
 * await classify(ctx, { model: 'sst2', input: ['a fine film'] });
 */
import { tf } from '../tensor/tf.js';
import type { GenerationContext } from './generation.js';
import { ApiError, badRequest } from './errors.js';
import { asBody } from './requests.js';

export async function classify(ctx: GenerationContext, body: unknown) {
  const model = ctx.store.base;
  if (model.taskType !== 'SEQ_CLS') {
    throw new ApiError(
      400,
      `this server's model is ${model.architecture}, not a classifier: use /v1/completions or /v1/chat/completions`,
      'invalid_request_error',
      null,
      'wrong_model_kind',
    );
  }
  const b = asBody(body);
  if (typeof b.model !== 'string' || b.model === '') throw badRequest('model', 'is required', b.model);
  const inputs = typeof b.input === 'string' ? [b.input] : b.input;
  if (
    !Array.isArray(inputs) ||
    inputs.length === 0 ||
    inputs.length > ctx.limits.maxN * 8 ||
    inputs.some((x) => typeof x !== 'string')
  )
    throw badRequest('input', `must be a string or a list of 1 to ${ctx.limits.maxN * 8} strings`, b.input);
  const handle = await ctx.store.acquire(b.model);
  try {
    const id2label = (model.config as { id2label?: Record<string, string> }).id2label ?? {};
    const data = [];
    let promptTokens = 0;
    for (const [index, text] of (inputs as string[]).entries()) {
      const ids = ctx.tokenizer.encode(text);
      if (ids.length > ctx.limits.contextLength)
        throw badRequest(
          `input[${index}]`,
          `is ${ids.length} tokens, more than the context of ${ctx.limits.contextLength}`,
        );
      promptTokens += ids.length;
      const inputIds = tf.tensor2d([ids], [1, ids.length], 'int32');
      const peft = ctx.store.peft;
      let out;
      try {
        if (!peft) out = model.forward({ inputIds });
        else if (handle.internal === null) out = peft.withAdapterDisabled(() => peft.forward({ inputIds }));
        else {
          peft.setAdapter(handle.internal);
          out = peft.forward({ inputIds });
        }
      } finally {
        inputIds.dispose();
      }
      const probs = tf.softmax(out.logits); // [1, numLabels]
      out.logits.dispose();
      const p = Array.from((await probs.data()) as Float32Array);
      probs.dispose();
      const names = p.map((_, i) => id2label[String(i)] ?? `LABEL_${i}`);
      const best = p.indexOf(Math.max(...p));
      data.push({ index, label: names[best], scores: Object.fromEntries(names.map((n, i) => [n, p[i]])) });
    }
    return {
      object: 'list',
      model: b.model,
      data,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
  } finally {
    handle.release();
  }
}

/**
 * Sample datasets the page pre-fills for the demo models: small, and learnable by the demo's tiny
 * random-weight bases in the default run (web/demo.ts `DEMO_RUNS`), so the page shows the point of
 * fine-tuning in well under a minute on wasm.
 */

export const SUBJECTS = ['the cat', 'a dog', 'the bird', 'my friend', 'the king', 'a child'];
export const VERBS = ['sat on', 'looked at', 'ran to', 'found', 'liked'];
export const OBJECTS = ['the mat', 'a tree', 'the house', 'the river', 'a red ball'];

/** Simple English sentences with a fixed grammar: a causal LM learns them quickly. */
export function sampleText(): string {
  const lines: string[] = [];
  for (let i = 0; i < 60; i++) {
    const s = SUBJECTS[i % SUBJECTS.length];
    const v = VERBS[(i * 7) % VERBS.length];
    const o = OBJECTS[(i * 3) % OBJECTS.length];
    lines.push(`${s} ${v} ${o}.`);
  }
  return lines.join('\n');
}

/** True when `sentence` (no final period) is one of the sample grammar's: subject, verb, object. */
export function isSampleSentence(sentence: string): boolean {
  const s = sentence.trim().replace(/\s+/g, ' ');
  return SUBJECTS.some((a) => VERBS.some((v) => OBJECTS.some((o) => s === `${a} ${v} ${o}`)));
}

/** The causal-LM demo's default prompt (a sentence start of the sample grammar). */
export const SAMPLE_TEXT_PROMPT = 'the cat';
export const POSITIVE = ['good', 'great', 'lovely', 'happy', 'wonderful', 'fun'];
export const NEGATIVE = ['bad', 'awful', 'sad', 'boring', 'terrible', 'dull'];
export const THINGS = ['film', 'day', 'meal', 'book', 'trip', 'song'];
/** Sentence frames: the adjective sits at different positions, so no fixed token position gives the label. */
const FRAMES = [
  (adj: string, thing: string) => `what a ${adj} ${thing}`,
  (adj: string, thing: string) => `the ${thing} was ${adj}`,
  (adj: string, thing: string) => `it is a ${adj} ${thing}`,
];

/**
 * Adjective–thing pairs kept out of the training rows, so the default prompt is a sentence the model
 * has never seen: it must read the adjective, since every thing occurs in both classes.
 */
export const HELD_OUT = new Set(['lovely song', 'dull trip']);

/** The classification demo's default prompt: a held-out pair whose label is "positive". */
export const SAMPLE_TSV_PROMPT = 'what a lovely song';

/**
 * A sentiment TSV (header `sentence\tlabel`, labels `positive` / `negative`): every thing (film, song,
 * …) appears equally often in both classes, so the label is carried only by the adjective, never by
 * the noun; the frames vary where the adjective sits.
 */
export function sampleTsv(): string {
  const rows = ['sentence\tlabel'];
  let k = 0;
  for (const [adjs, label] of [
    [POSITIVE, 'positive'],
    [NEGATIVE, 'negative'],
  ] as const) {
    for (const adj of adjs) {
      for (const thing of THINGS) {
        if (HELD_OUT.has(`${adj} ${thing}`)) continue;
        rows.push(`${FRAMES[k++ % FRAMES.length]!(adj, thing)}\t${label}`);
      }
    }
  }
  return rows.join('\n');
}

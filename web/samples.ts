/** Sample datasets the page pre-fills for the demo models (small and learnable in a few dozen steps). */

const SUBJECTS = ['the cat', 'a dog', 'the bird', 'my friend', 'the king', 'a child'];
const VERBS = ['sat on', 'looked at', 'ran to', 'found', 'liked'];
const OBJECTS = ['the mat', 'a tree', 'the house', 'the river', 'a red ball'];

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

const POSITIVE = ['good', 'great', 'lovely', 'happy', 'wonderful', 'fun'];
const NEGATIVE = ['bad', 'awful', 'sad', 'boring', 'terrible', 'dull'];
const THINGS = ['film', 'day', 'meal', 'book', 'trip', 'song'];

/** A sentiment TSV (header `sentence\tlabel`): the label is carried by one adjective. */
export function sampleTsv(): string {
  const rows = ['sentence\tlabel'];
  for (let i = 0; i < 48; i++) {
    const pos = i % 2 === 0;
    const adj = (pos ? POSITIVE : NEGATIVE)[(i >> 1) % 6];
    rows.push(`what a ${adj} ${THINGS[(i * 5) % THINGS.length]}\t${pos ? 1 : 0}`);
  }
  return rows.join('\n');
}

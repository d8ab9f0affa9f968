/**
 * The conformance suite's case list, shared by the Node and browser runners (see types.ts).
 * @example const cases = conformanceCases(); const ref = await referenceOutputs(cases);
 */
import { opCases } from './ops.js';
import { trainingCases } from './training.js';
import { hyperloraCases } from './hyperlora.js';
import { halfCases } from './half.js';
import type { ConformanceCase } from './types.js';

export * from './types.js';
export { compareOutputs, referenceOutputs, runOnBackend } from './runner.js';

/** Every case: ops first, then whole training runs. */
export function conformanceCases(): ConformanceCase[] {
  return [...opCases(), ...halfCases(), ...trainingCases(), ...hyperloraCases()];
}

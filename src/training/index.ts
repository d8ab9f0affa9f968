/**
 * Public training API: the Trainer, AdamW and schedules, metrics, data loading and checkpoints.
 *
 * @example
 * import { Trainer, loadExamples } from 'lowrank';
 */
export * from './optim.js';
export * from './metrics.js';
export * from './types.js';
export { Trainer, TrainingError } from './trainer.js';
export { evaluate, taskLoss, type EvalResult } from './evaluate.js';
export {
  checkpointDir,
  latestCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
  disposeCheckpoint,
  type TrainerState,
  type CheckpointContent,
} from './checkpoint.js';
export * from './data/index.js';
export { adaloraHook, moduleOfParam } from './adalora_hook.js';

/** File-system errors live in the run floor (`src/run/fs_errors.ts`); the CLI re-exports them. */
export { FileError } from '../run/fs_errors.js';

/**
 * Keeps the user's model files in IndexedDB, so a model picked once loads again on the next visit
 * without picking files. Records are the worker's `ModelSource` objects (file bytes included), keyed
 * by a display name.
 */
import type { ModelSource } from './protocol.js';

const DB_NAME = 'lowrank';
const STORE = 'models';

export interface StoredModel {
  name: string;
  savedAt: number;
  source: ModelSource;
}

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'name' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB: cannot open the database'));
  });
}

function run<T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return openDb().then(
    (db) =>
      new Promise<T>((resolve, reject) => {
        const tx = db.transaction(STORE, mode);
        const req = op(tx.objectStore(STORE));
        tx.oncomplete = () => {
          db.close();
          resolve(req.result);
        };
        tx.onerror = () => {
          db.close();
          reject(tx.error ?? new Error('IndexedDB: transaction failed'));
        };
      }),
  );
}

/** Saves (or replaces) a model's files under `name`. */
export async function saveModel(name: string, source: ModelSource): Promise<void> {
  const record: StoredModel = { name, savedAt: Date.now(), source };
  await run('readwrite', (s) => s.put(record));
}

/** Names of the saved models, newest first. */
export async function listModels(): Promise<string[]> {
  const all = await run<StoredModel[]>('readonly', (s) => s.getAll() as IDBRequest<StoredModel[]>);
  return all.sort((a, b) => b.savedAt - a.savedAt).map((m) => m.name);
}

/** The saved model called `name`, or undefined. */
export async function loadStoredModel(name: string): Promise<StoredModel | undefined> {
  return run<StoredModel | undefined>('readonly', (s) => s.get(name) as IDBRequest<StoredModel | undefined>);
}

/**
 * The backend names and reports shared by `tensor/backend.ts` (Node) and its browser twin
 * `tensor/backend_browser.ts`, which the web build swaps in: one definition for both.
 */
/** Every backend name `initBackend` accepts (`auto`: the fastest that loads). */
export const BACKENDS = ['auto', 'native', 'wasm', 'cpu', 'tensorflow', 'webgpu', 'webgl'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** What `initBackend` did: the backend in use and why each faster one was passed over. */
export interface BackendReport {
  backend: string;
  tried: { name: string; ok: boolean; reason?: string }[];
}

/** The backend in use, the native addon's state and the versions (`backendInfo`). */
export interface BackendInfo {
  backend: string;
  addonLoaded: boolean;
  addonError?: string;
  blas: string | null;
  threads: number;
  version: string;
  tfjsVersion: string;
}

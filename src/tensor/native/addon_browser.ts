/**
 * The browser twin of `native/addon.ts` (the web build swaps it in, see `web/vite.config.ts`): a
 * Node-API addon cannot load in a browser, so {@link loadAddon} is always null and the fused-op
 * helpers take their composed-tfjs paths. Same exports as `addon.ts`.
 */
export type { NativeAddon } from './addon.js';
import type { NativeAddon } from './addon.js';

/** Always null in a browser (reason in {@link addonError}). */
export function loadAddon(): NativeAddon | null {
  return null;
}

/** Why the addon is unavailable here. */
export function addonError(): string | undefined {
  return 'the native addon is Node-only (browsers use WebGPU, WebGL or WASM)';
}

/** A browser has no process environment to restore: always empty. */
export function userEnvironment(): Record<string, string | undefined> {
  return {};
}

/**
 * The backend conformance suite (issue 12): one list of cases, run by the Node runner
 * (tests/conformance.test.ts: native, wasm against cpu) and by the browser runner
 * (tests/conformance_browser.test.ts: wasm, WebGL, WebGPU against tfjs's cpu in the same page).
 * A case computes named outputs on the active backend; the runner computes them on `cpu` too and
 * compares each output within the case's named tolerance.
 */
export type Values = Float32Array | Int32Array | Uint8Array | number[];

/** `|got − want| ≤ atol + rtol·max|want|` elementwise (max over the output). */
export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface ConformanceCase {
  name: string;
  group: 'op' | 'training';
  /** Per output name prefix (longest match wins), else `default`. */
  tol: { default: Tolerance } & Record<string, Tolerance>;
  /** Computes the outputs on the active backend; leaves no tensor behind. */
  run(): Promise<Record<string, Values>>;
}

/** One case on one backend. */
export interface CaseResult {
  name: string;
  group: ConformanceCase['group'];
  status: 'pass' | 'fail' | 'error';
  /** Largest error over outputs, as a fraction of the allowed error (≤ 1 passes). */
  worst: number;
  /** The output with the largest relative error and its absolute error. */
  worstOutput?: string;
  maxAbs?: number;
  detail?: string;
  ms: number;
}

/** One backend's run: skipped with the backend's own error, or every case's result. */
export interface BackendResult {
  backend: string;
  runtime: 'node' | 'chromium';
  skipped?: string;
  /** e.g. the WebGPU adapter or WebGL renderer description */
  adapter?: string;
  cases: CaseResult[];
}

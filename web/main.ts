/**
 * The page: wires the form, charts and buttons to the training worker. All computation happens in
 * the worker (web/worker.ts); this file only reads inputs, shows results and shows errors in the page.
 */
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { ConfigError, internal } from '../src/errors.js';
import { WorkerClient } from './client.js';
import { buffersOf, download, formatFromName, readPicked } from './files.js';
import { modelSourceFromForm, sourceBuffers } from './ui/model_source.js';
import type {
  BackendName,
  DataSpec,
  MethodSpec,
  ModelInfo,
  ModelSource,
  TrainSpec,
  WorkerEvent,
} from './protocol.js';
import { SAMPLE_TEXT_PROMPT, SAMPLE_TSV_PROMPT, sampleText, sampleTsv } from './samples.js';
import { DEMO_RUNS, type DemoArch } from './demo_runs.js';
import { applyDemoRun, clearOutputs, clearPresetTargets, clearProgress } from './ui/form.js';
import { listModels, loadStoredModel, saveModel } from './storage.js';
import { adviceFor } from './advice.js';
import { LossChart } from './ui/loss_chart.js';
import { RankHeatmap } from './ui/heatmap.js';
import { ErrorBox } from './ui/errors.js';
import { startBackend } from './ui/backend.js';

const $ = <T extends HTMLElement = HTMLInputElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) internal(`page: element #${id} is missing`);
  return e as T;
};
const num = (id: string): number => Number($(id).value);

/** A new training worker that reports its events to this page. */
function makeClient(): WorkerClient {
  const c = new WorkerClient(new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' }));
  c.on(onEvent);
  return c;
}
const lossChart = new LossChart($<HTMLDivElement>('loss-chart'));
const heatmap = new RankHeatmap($<HTMLDivElement>('heatmap'));
let modelInfo: ModelInfo | null = null;

const errors = new ErrorBox($<HTMLDivElement>('error'));
/** An error handler that shows the error next to element `id` (the action that failed). */
const showErrorAt = (id: string) => (err: unknown) => errors.show(err, $(id));
const clearError = () => errors.clear();

/** Runs an async UI action with errors shown next to its button, which is disabled meanwhile. */
function action(buttonId: string, fn: () => Promise<void>): void {
  const b = $<HTMLButtonElement>(buttonId);
  b.addEventListener('click', () => {
    b.disabled = true;
    clearError();
    fn()
      .catch(showErrorAt(buttonId))
      .finally(() => (b.disabled = false));
  });
}

function setTrainState(state: string): void {
  const s = $('train-state');
  s.textContent = state;
  s.dataset.state = state;
  const held = state === 'pausing' || state === 'paused';
  const active = state === 'running' || held || state === 'stopping';
  $<HTMLButtonElement>('train').disabled = active;
  $<HTMLButtonElement>('pause').disabled = state !== 'running';
  $<HTMLButtonElement>('resume').disabled = !held;
  $<HTMLButtonElement>('stop').disabled = !(state === 'running' || held);
}

function formatMs(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
}

function onEvent(e: WorkerEvent): void {
  if (e.type === 'progress') {
    lossChart.push(e.step, e.loss);
    const p = $<HTMLProgressElement>('progress');
    p.max = e.totalSteps;
    p.value = e.step;
    const budget = e.budget !== undefined ? ` · budget ${e.budget}` : '';
    const reg = e.regLoss !== undefined ? ` (+ orth. reg. ${e.regLoss.toFixed(4)})` : '';
    $('progress-text').textContent =
      `step ${e.step}/${e.totalSteps} · loss ${e.loss.toFixed(4)}${reg} · lr ${e.learningRate.toExponential(2)}` +
      `${budget} · elapsed ${formatMs(e.elapsedMs)} · ETA ${formatMs(e.etaMs)}`;
  } else if (e.type === 'ranks') {
    heatmap.render(e);
  } else if (e.type === 'trainState') {
    setTrainState(e.state);
  } else if (e.type === 'adapters') {
    const sel = $<HTMLSelectElement>('adapters');
    const opts = [new Option('(base model)', '')].concat(e.names.map((n) => new Option(n, n)));
    sel.replaceChildren(...opts);
    sel.value = e.active ?? '';
  } else if (e.type === 'model') {
    showModel(e.info);
    // A head rebuilt for the data (another class count) changes the uniform baseline.
    setBaseline(e.info.taskType);
  } else if (e.type === 'log') {
    $('notes').textContent = e.message;
  }
}
let worker = makeClient();

// ---- model -------------------------------------------------------------------------------------

async function loadModel(source: ModelSource, name: string, store: boolean): Promise<void> {
  // Store a copy before the bytes are transferred (transfer empties the page's buffers).
  if (store)
    await saveModel(name, source).then(refreshStored, (e) =>
      console.warn('could not save the model in IndexedDB', e),
    );
  const info = await worker.call('loadModel', { source }, sourceBuffers(source));
  // Nothing on screen may belong to the previous model: its outputs, its last run.
  clearOutputs();
  clearProgress();
  lossChart.reset(1);
  lossChart.setBaseline(null);
  heatmap.clear('no AdaLoRA run yet');
  showModel(info);
  if (source.kind === 'demo') applyDemoRun(DEMO_RUNS[source.arch]);
  else clearPresetTargets();
  $<HTMLSelectElement>('task').value = info.taskType;
  if (!$('data-text').value.trim() || $('data-text').dataset.sample === 'true') fillSample(info.taskType);
  updateAdvice();
}

/** The loss of a uniform guess (ln vocab for a causal LM, ln classes for a classifier) on the chart. */
function setBaseline(task: string): void {
  const n = !modelInfo ? 0 : task === 'SEQ_CLS' ? Math.max(2, modelInfo.numLabels) : modelInfo.vocabSize;
  if (n > 1) lossChart.setBaseline(Math.log(n), `uniform guess ln(${n})`);
  else lossChart.setBaseline(null);
}

/** Shows what the worker says about the base model (after a load, or a head rebuilt for the data). */
function showModel(info: ModelInfo): void {
  modelInfo = info;
  $('model-name').textContent = info.name;
  const labels = info.taskType === 'SEQ_CLS' ? ` (${info.numLabels} labels)` : '';
  $('model-info').textContent =
    `${info.modelType} · ${info.taskType}${labels} · ${info.numParameters.toLocaleString()} parameters · ` +
    `${info.numLayers} layers · vocab ${info.vocabSize} · linear modules: ${info.linearModules.join(', ')}`;
}

function fillSample(task: string): void {
  const ta = $<HTMLTextAreaElement>('data-text');
  ta.value = task === 'SEQ_CLS' ? sampleTsv() : sampleText();
  ta.dataset.sample = 'true';
  $<HTMLSelectElement>('data-format').value = task === 'SEQ_CLS' ? 'tsv' : 'text';
  $<HTMLInputElement>('prompt').value = task === 'SEQ_CLS' ? SAMPLE_TSV_PROMPT : SAMPLE_TEXT_PROMPT;
}

async function refreshStored(): Promise<void> {
  const names = await listModels();
  const sel = $<HTMLSelectElement>('stored-models');
  sel.replaceChildren(new Option('saved in this browser…', ''), ...names.map((n) => new Option(n, n)));
}

for (const [input, kind] of [
  ['model-folder', 'folder'],
  ['llama2c-bin', 'llama2c'],
  ['llama2c-tok', 'llama2c'],
] as const) {
  $(input).addEventListener('change', () => {
    (document.querySelector(`input[name="model-kind"][value="${kind}"]`) as HTMLInputElement).checked = true;
  });
}
action('load-model', async () => {
  const { source, name, store } = await modelSourceFromForm();
  await loadModel(source, name, store);
});
action('load-stored', async () => {
  const name = $<HTMLSelectElement>('stored-models').value;
  if (!name) throw new ConfigError('saved models', 'none chosen', undefined, 'choose a saved model first');
  const rec = await loadStoredModel(name);
  if (!rec)
    throw new ConfigError('saved models', 'no saved model has this name', name, 'choose one from the list');
  await loadModel(rec.source, rec.name, false);
});

// ---- data --------------------------------------------------------------------------------------

async function takeDataFile(file: File): Promise<void> {
  const ta = $<HTMLTextAreaElement>('data-text');
  ta.value = await file.text();
  ta.dataset.sample = 'false';
  $<HTMLSelectElement>('data-format').value = formatFromName(file.name);
}
$('data-file').addEventListener('change', () => {
  const f = $('data-file').files?.[0];
  if (f) takeDataFile(f).catch(showErrorAt('data-file'));
});
const drop = $<HTMLDivElement>('drop-zone');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer?.files[0];
  if (f) takeDataFile(f).catch(showErrorAt('drop-zone'));
});
$('data-text').addEventListener('input', () => ($('data-text').dataset.sample = 'false'));

// ---- method ------------------------------------------------------------------------------------

function methodFromForm(): MethodSpec {
  const targets = $('targets')
    .value.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    method: $<HTMLSelectElement>('method').value as MethodSpec['method'],
    r: num('r'),
    alpha: num('alpha'),
    dropout: num('dropout'),
    targetModules: targets,
    initR: num('init-r'),
    tinit: num('tinit'),
    tfinal: num('tfinal'),
    deltaT: num('delta-t'),
    beta1: 0.85,
    beta2: 0.85,
    orthRegWeight: num('orth-reg'),
  };
}

function updateAdvice(): void {
  const m = methodFromForm();
  for (const e of Array.from(document.querySelectorAll<HTMLElement>('.adalora-only')))
    e.hidden = m.method !== 'adalora';
  $('advice').textContent = adviceFor(m, num('steps'), modelInfo);
}
for (const id of ['method', 'r', 'init-r', 'tinit', 'tfinal', 'delta-t', 'steps'])
  $(id).addEventListener('input', updateAdvice);

// ---- training ----------------------------------------------------------------------------------

function trainSpecFromForm(): TrainSpec {
  const data: DataSpec = {
    format: $<HTMLSelectElement>('data-format').value as DataSpec['format'],
    content: $<HTMLTextAreaElement>('data-text').value,
    task: $<HTMLSelectElement>('task').value as DataSpec['task'],
    textColumn: $('text-column').value.trim(),
    labelColumn: $('label-column').value.trim(),
  };
  return {
    adapterName: $('adapter-name').value.trim() || 'default',
    data,
    method: methodFromForm(),
    steps: num('steps'),
    learningRate: num('lr'),
    batchSize: num('batch'),
    seqLen: num('seq-len'),
    seed: num('seed'),
  };
}

action('train', async () => {
  const spec = trainSpecFromForm();
  // A new run starts from a clean view, also when the worker rejects it (bad data, no model).
  lossChart.reset(spec.steps);
  setBaseline(spec.data.task);
  clearProgress();
  clearOutputs();
  heatmap.clear(
    spec.method.method === 'adalora'
      ? 'the ranks appear at the first AdaLoRA step'
      : `${spec.method.method} keeps a fixed rank ${spec.method.r}`,
  );
  setTrainState('idle');
  const res = await worker.call('train', { spec }).catch((err: unknown) => {
    // Rejected before it started, or failed mid-run: never leave an earlier run's "done" showing.
    setTrainState('failed');
    throw err;
  });
  $('progress-text').textContent += res.stopped ? ' · stopped (adapter kept)' : ' · done';
});
for (const kind of ['pause', 'resume', 'stop'] as const) {
  $(kind).addEventListener('click', () => {
    // the state shown comes from the worker's trainState events alone: every change arrives as one,
    // in order (`pausing` when asked, `paused` once the run waits between steps)
    worker.call(kind, {}).catch(showErrorAt(kind));
  });
}

// ---- use ---------------------------------------------------------------------------------------

$('adapters').addEventListener('change', () => {
  const name = $<HTMLSelectElement>('adapters').value || null;
  worker.call('setAdapter', { name }).catch(showErrorAt('adapters'));
});

action('run', async () => {
  const r = await worker.call('probe', {
    prompt: $<HTMLTextAreaElement>('prompt').value,
    maxNewTokens: num('max-new'),
  });
  $('output').textContent = r.text;
  const logits = $('probe-logits');
  logits.dataset.result = JSON.stringify(r);
  const shown =
    r.probs.length > 0
      ? r.probs.map((p, i) => `${r.labels?.[i] ?? i} ${p.toFixed(4)}`)
      : r.logits.slice(0, 8).map((x) => x.toFixed(4));
  logits.textContent = `${r.adapter ?? 'base model'} · ${r.probs.length > 0 ? 'probabilities' : 'next-token logits'}: ${shown.join(', ')}${r.probs.length === 0 && r.logits.length > 8 ? ', …' : ''}`;
});

action('download', async () => {
  const name = $<HTMLSelectElement>('adapters').value;
  if (!name)
    throw new ConfigError(
      'download',
      'no adapter is selected',
      undefined,
      'choose an adapter (the base model has none)',
    );
  const files = await worker.call('exportAdapter', { name });
  download('adapter_config.json', files.config, 'application/json');
  download(
    'adapter_model.safetensors',
    files.safetensors as Uint8Array<ArrayBuffer>,
    'application/octet-stream',
  );
});

$('adapter-folder').addEventListener('change', () => {
  clearError();
  readPicked($('adapter-folder').files)
    .then(async (files) => {
      if (files.length === 0) return;
      const name = files[0]!.path.split('/')[0] || 'loaded';
      await worker.call('loadAdapter', { name, files }, buffersOf(files));
    })
    .catch(showErrorAt('adapter-folder'))
    .finally(() => ($('adapter-folder').value = ''));
});

// ---- start -------------------------------------------------------------------------------------

async function start(): Promise<void> {
  setTrainState('idle');
  fillSample('CAUSAL_LM');
  applyDemoRun(DEMO_RUNS[$<HTMLSelectElement>('demo-arch').value as DemoArch]);
  updateAdvice();
  const want = (new URLSearchParams(location.search).get('backend') ?? 'auto') as BackendName;
  const wasmPaths = {
    'tfjs-backend-wasm.wasm': wasmPlain,
    'tfjs-backend-wasm-simd.wasm': wasmSimd,
    'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
  };
  const b = $('backend');
  let started;
  try {
    started = await startBackend(worker, makeClient, want, wasmPaths);
  } catch (err) {
    b.textContent = 'failed';
    throw err;
  }
  worker = started.client;
  const r = started.reply;
  b.textContent = r.backend;
  b.title = r.tried.map((t) => `${t.name}: ${t.ok ? 'in use' : t.reason}`).join('\n');
  $('backend-note').textContent = started.note;
  // Every backend tried, and why it was chosen or skipped (the real error), visible under the badge.
  const why = document.createElement('ul');
  why.id = 'backend-why';
  for (const t of r.tried)
    why.append(
      Object.assign(document.createElement('li'), {
        textContent: `${t.name}: ${t.ok ? 'chosen' : `skipped — ${t.reason}`}`,
      }),
    );
  b.parentElement!.after(why);
  document.body.dataset.ready = 'true';
  await refreshStored().catch((e) => console.warn('IndexedDB unavailable', e));
}
start().catch((err: unknown) => errors.show(err));

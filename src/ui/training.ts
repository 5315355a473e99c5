// Runs: start / queue (β sweep) / pause / resume / stop, records into the store, persistence in
// IndexedDB (`runs`), resume after a reload from the worker's last checkpoint, and export.
import type { BetaScheduleEntry, EvalRecord, ExperimentConfig, TrainRecord } from '../train/config';
import { idbAll, idbDelete, idbPut } from '../worker/idb';
import type { EvalTranscript, FromTrain, ToTrain } from '../worker/train-protocol';
import { runData, studioTrainMix } from './data';
import type { TrainMixPlan } from './mix';
import { useStudio, type RunState } from './store';
import { studioPlan } from './memoryPlan';
import { adapterName, measureSpeed, saveSpeed, speedKey, studioShape, studioSpeed, type EstimateInputs } from './estimate';

export interface PersistedRun extends RunState {
  transcripts?: Record<string, Record<number, EvalTranscript[]>>;
}

let worker: Worker | null = null;
type Reply = Extract<FromTrain, { type: 'exported' } | { type: 'tried' }>;
const requests = new Map<string, { resolve: (m: Reply) => void; reject: (e: Error) => void }>();
let reqSeq = 0;
/** transcripts per run → set → step (kept out of the zustand store: only Try it reads them) */
export const transcripts = new Map<string, Record<string, Record<number, EvalTranscript[]>>>();

function getWorker(): Worker {
  if (worker) return worker;
  worker = new Worker(new URL('../worker/train.worker.ts', import.meta.url), { type: 'module', name: 'train-worker' });
  worker.onmessage = (ev: MessageEvent<FromTrain>) => handle(ev.data);
  // Tests only: with ?test-hooks=1 the worker accepts injected faults (test/e2e/studio-faults.test.ts).
  if (testHooksEnabled()) {
    worker.postMessage({ type: 'test-hooks' } satisfies ToTrain);
    (globalThis as { __bloraTrainFault?: unknown }).__bloraTrainFault = (fault: 'device-loss' | 'nan' | 'pause', atStep: number) =>
      worker?.postMessage({ type: 'test-fault', fault, atStep } satisfies ToTrain);
  }
  worker.onerror = (ev) => {
    const active = useStudio.getState().runs.find((r) => r.status === 'running' || r.status === 'starting' || r.status === 'paused');
    if (active) finish(active.id, { status: 'error', error: `training worker crashed: ${ev.message}` });
    for (const r of requests.values()) r.reject(new Error(`training worker crashed: ${ev.message}`));
    requests.clear();
    worker = null;
  };
  return worker;
}

const send = (m: ToTrain) => getWorker().postMessage(m);

function testHooksEnabled(): boolean {
  return typeof location !== 'undefined' && new URLSearchParams(location.search).get('test-hooks') === '1';
}

/** A run as saved: without the File handles of a dropped model folder (IndexedDB would copy the whole model per run). */
function persistable(r: RunState): RunState {
  return r.data.model.kind === 'files' ? { ...r, data: { ...r.data, model: { kind: 'files', files: [] } } } : r;
}

/** A saved run's dropped-folder model gets the File handles of the folder loaded now, when it is the same one. */
function withModelFiles(r: RunState): RunState {
  const info = useStudio.getState().model.info;
  if (r.data.model.kind !== 'files' || r.data.model.files.length || info?.modelId !== r.data.modelId) return r;
  return { ...r, data: { ...r.data, model: info.location } };
}

function persist(id: string): void {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  if (!r) return;
  const p: PersistedRun = { ...persistable(r), transcripts: transcripts.get(id) };
  idbPut('runs', id, p).catch((e) => useStudio.getState().updateRun(id, (x) => ({ ...x, error: (e as Error).message })));
}

let persistTimer: ReturnType<typeof setTimeout> | null = null;
function persistSoon(id: string): void {
  if (persistTimer) return;
  persistTimer = setTimeout(() => {
    persistTimer = null;
    persist(id);
  }, 300);
}

/** Launch time of runs that started from step 0 in this tab and were not paused: their wall time measures the adapter. */
const launchedAt = new Map<string, number>();

/** The run's inputs as the estimator sees them (its own utterances, the model loaded now). */
function estimateInputs(r: RunState): EstimateInputs {
  const s = useStudio.getState();
  return {
    model: s.model,
    gpu: s.gpu,
    datasets: [{ role: 'train', utts: r.data.train }, ...r.data.eval.map((e) => ({ role: e.role, utts: e.utts }))],
  };
}

/** A finished run's speed on this adapter, stored for the next estimate (src/ui/estimate.ts). */
function recordSpeed(id: string): void {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  const info = useStudio.getState().model.info;
  const t0 = launchedAt.get(id);
  launchedAt.delete(id);
  if (!r || !info || info.modelId !== r.data.modelId) return;
  const inputs = estimateInputs(r);
  const shape = studioShape(inputs, r.config);
  if (!shape) return;
  const speed = measureSpeed(shape, r.train, t0 !== undefined ? (performance.now() - t0) / 1000 : null, studioSpeed(inputs));
  if (speed) saveSpeed(speedKey(adapterName(inputs), info.modelId), speed);
}

function finish(id: string, patch: Partial<RunState>): void {
  if (patch.status === 'done') recordSpeed(id);
  else launchedAt.delete(id);
  useStudio.getState().updateRun(id, (r) => ({ ...r, ...patch }));
  persist(id);
  startNextQueued();
}

function handle(m: FromTrain): void {
  const { updateRun } = useStudio.getState();
  switch (m.type) {
    case 'status':
      if (m.status === 'done' || m.status === 'stopped' || m.status === 'error')
        finish(m.runId, { status: m.status, stage: undefined, error: m.error });
      else {
        if (m.status === 'paused') launchedAt.delete(m.runId); // its wall time now includes the pause
        updateRun(m.runId, (r) => ({
          ...r,
          status: m.status,
          stage: m.stage,
          sessionStart:
            m.status === 'running' && r.status !== 'running' ? { at: performance.now(), step: r.train.at(-1)?.step ?? 0 } : r.sessionStart,
        }));
        persistSoon(m.runId);
      }
      break;
    case 'record':
      updateRun(m.runId, (r) =>
        m.record.kind === 'train'
          ? { ...r, train: [...r.train, m.record] }
          : m.record.kind === 'dev'
            ? { ...r, dev: [...(r.dev ?? []).filter((d) => d.step !== m.record.step), m.record] }
            : { ...r, evals: [...r.evals, m.record] },
      );
      persistSoon(m.runId);
      break;
    case 'hist':
      updateRun(m.runId, (r) => ({ ...r, hist: m.hist }));
      break;
    case 'uncertainty':
      updateRun(m.runId, (r) => ({ ...r, uncertainty: m.result }));
      persistSoon(m.runId);
      break;
    case 'transcripts': {
      const t = transcripts.get(m.runId) ?? {};
      t[m.set] = { ...(t[m.set] ?? {}), [m.step]: m.transcripts };
      transcripts.set(m.runId, t);
      persistSoon(m.runId);
      break;
    }
    case 'resumed':
    case 'recovered': {
      // The worker goes on from its checkpoint at step k — after a reload ('resumed') or on a new device after
      // losing one ('recovered', and the run says so): training records up to it (saved with it) stay,
      // evaluations before it stay; later ones are redone.
      const k = m.step;
      const t = transcripts.get(m.runId);
      if (t) for (const set of Object.keys(t)) for (const s of Object.keys(t[set])) if (Number(s) >= k) delete t[set][Number(s)];
      const have = new Set(m.records.map((x) => x.step));
      updateRun(m.runId, (r) => ({
        ...r,
        ...(m.type === 'recovered'
          ? { stage: m.message, recoveries: [...(r.recoveries ?? []), { at: Date.now(), step: k, message: m.message }] }
          : { lastCheckpointStep: k > 0 ? k : r.lastCheckpointStep }),
        train: [...r.train.filter((x) => x.step <= k && !have.has(x.step)), ...m.records].sort((a, b) => a.step - b.step),
        evals: r.evals.filter((x) => x.step < k),
        // the β schedule the restored run follows (live changes kept in its checkpoint)
        ...(m.type === 'resumed' && m.betaSchedule ? { config: withSchedule(r.config, m.betaSchedule) } : {}),
      }));
      persist(m.runId);
      break;
    }
    case 'checkpoint':
      updateRun(m.runId, (r) => ({ ...r, lastCheckpointStep: m.step }));
      persist(m.runId);
      break;
    case 'beta':
      // A live β change: the run's config gets the schedule (Export writes it into experiment.json; a resume sends it).
      if (m.error) updateRun(m.runId, (r) => ({ ...r, stage: `β not changed: ${m.error}` }));
      else updateRun(m.runId, (r) => ({ ...r, config: withSchedule(r.config, m.schedule), stage: `β = ${m.beta} from step ${m.step}` }));
      persist(m.runId);
      break;
    case 'exported':
    case 'tried':
      requests.get(m.id)?.resolve(m);
      requests.delete(m.id);
      break;
    case 'device-lost': {
      // Nothing lost but the steps since the last checkpoint: a fresh worker (and device) resumes the run.
      worker?.terminate();
      worker = null;
      const r = useStudio.getState().runs.find((x) => x.id === m.runId);
      if (r && (r.status === 'running' || r.status === 'starting')) {
        useStudio.getState().updateRun(r.id, (x) => ({ ...x, stage: `${m.message}; resuming from the last checkpoint` }));
        launch(r, true);
      }
      break;
    }
    case 'request-error':
      requests.get(m.id)?.reject(new Error(m.message));
      requests.delete(m.id);
      break;
  }
}

function busy(): boolean {
  return useStudio.getState().runs.some((r) => r.status === 'starting' || r.status === 'running' || r.status === 'paused');
}

function newRun(cfg: ExperimentConfig, name?: string): RunState | string {
  const data = runData();
  if (typeof data === 'string') return data;
  // Refused before the worker starts: the Model panel already says where the weights would come from.
  const t = useStudio.getState().model.info?.trainability;
  if (t && !t.trainable) return `this model cannot be trained: ${t.reason ?? t.from}`;
  // Refused before the worker starts: a run the memory plan says cannot fit would end in a lost device.
  let plan: ReturnType<typeof studioPlan>;
  try {
    plan = studioPlan(useStudio.getState(), cfg);
  } catch (e) {
    return `memory plan: ${(e as Error).message}`;
  }
  if (plan && !plan.fits) return `this run does not fit the GPU: ${plan.problems.join('; ')} — fix: ${plan.fixes.join(', or ')}`;
  const config = structuredClone(cfg);
  // Dataset names stand for their folders in experiment.json (the browser never sees absolute paths).
  const mix = studioTrainMix() as TrainMixPlan; // runData() above refused a plan that cannot run
  const devNames = useStudio
    .getState()
    .datasets.filter((d) => d.role === 'dev')
    .map((d) => d.name);
  config.data = {
    train: mix.train || 'studio',
    ...(mix.trainMix ? { trainMix: mix.trainMix } : {}),
    eval: data.eval.map((e) => ({ path: e.name, role: e.role, name: e.name })),
    ...(devNames.length ? { dev: devNames.map((n) => ({ path: n, name: n })) } : {}),
  };
  const id = `run-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  return { id, name: name ?? config.name, config, createdAt: Date.now(), status: 'queued', train: [], evals: [], data };
}

function launch(saved: RunState, resume: boolean): void {
  const run = withModelFiles(saved);
  if (resume) launchedAt.delete(run.id);
  else launchedAt.set(run.id, performance.now());
  useStudio.getState().updateRun(run.id, (r) => ({
    ...r,
    status: 'starting',
    error: undefined,
    stage: resume ? 'resuming from the last checkpoint' : 'starting',
  }));
  useStudio.getState().set({ activeRun: run.id, view: 'run' });
  send({ type: 'start', runId: run.id, config: run.config, data: run.data, resume });
}

function startNextQueued(): void {
  if (busy()) return;
  const next = useStudio.getState().runs.find((r) => r.status === 'queued');
  if (next) launch(next, false);
}

function enqueue(runs: RunState[]): void {
  const { set } = useStudio.getState();
  set({ runs: [...useStudio.getState().runs, ...runs] });
  runs.forEach((r) => persist(r.id));
  startNextQueued();
}

export function startRun(cfg: ExperimentConfig): string | null {
  const r = newRun(cfg);
  if (typeof r === 'string') return reportSetupError(r);
  enqueue([r]);
  return r.id;
}

/** One BLoRA run per β, same seed and data, run one after another. */
export function queueSweep(cfg: ExperimentConfig, betas: string): string | null {
  const values = betas
    .split(/[\s,;]+/)
    .filter(Boolean)
    .map(Number);
  if (!values.length || values.some((b) => !(Number.isFinite(b) && b >= 0)))
    return reportSetupError(`β values must be numbers ≥ 0 separated by commas (got "${betas}")`);
  const runs: RunState[] = [];
  for (const beta of values) {
    const c = structuredClone(cfg);
    c.method = 'blora';
    c.adapter.beta = beta;
    delete c.adapter.klScale; // the sweep's β is the value (klScale would be another spelling of a different one)
    c.name = `${cfg.name} β=${beta}`;
    const r = newRun(c, c.name);
    if (typeof r === 'string') return reportSetupError(r);
    runs.push({ ...r, id: `${r.id}-${runs.length}` });
  }
  enqueue(runs);
  return runs[0].id;
}

/** Runs of the given experiments, queued in order (the demo's LoRA + BLoRA runs); null when one cannot start. */
export function queueRuns(cfgs: ExperimentConfig[]): string[] | null {
  const runs: RunState[] = [];
  for (const c of cfgs) {
    const r = newRun(c, c.name);
    if (typeof r === 'string') return reportSetupError(r);
    runs.push({ ...r, id: `${r.id}-${runs.length}` });
  }
  enqueue(runs);
  return runs.map((r) => r.id);
}

function reportSetupError(msg: string): null {
  useStudio.getState().set({ setupError: msg });
  return null;
}

export function pauseRun(): void {
  send({ type: 'pause' });
}

export function resumeRun(id: string): void {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  if (!r) return;
  if (r.status === 'paused' && worker) send({ type: 'resume' });
  else launch(r, true); // e.g. paused before a reload: the worker restarts from the checkpoint
}

function withSchedule(c: ExperimentConfig, schedule: BetaScheduleEntry[]): ExperimentConfig {
  return { ...c, adapter: { ...c.adapter, betaSchedule: schedule.map((e) => ({ step: e.step, beta: e.beta })) } };
}

/** β of the training BLoRA run `id` from its next step on (the Run view's live control); the worker answers 'beta'. */
export function setRunBeta(id: string, beta: number): void {
  send({ type: 'set-beta', runId: id, beta });
}

export function stopRun(id: string): void {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  if (r?.status === 'queued') return finish(id, { status: 'stopped' });
  send({ type: 'stop' });
}

export async function deleteRun(id: string): Promise<void> {
  const { set, runs } = useStudio.getState();
  if (runs.find((r) => r.id === id && (r.status === 'running' || r.status === 'starting'))) send({ type: 'stop' });
  set({ runs: runs.filter((r) => r.id !== id) });
  transcripts.delete(id);
  await idbDelete('runs', id);
  await idbDelete('checkpoints', id);
  await idbDelete('checkpoints', `${id}|train`);
  await idbDelete('checkpoints', `${id}|prev`);
}

/** On page load: runs from IndexedDB; a run that was training when the tab went away resumes. */
export async function restoreRuns(): Promise<void> {
  const saved = (await idbAll<PersistedRun>('runs')).sort((a, b) => a.createdAt - b.createdAt);
  for (const r of saved) if (r.transcripts) transcripts.set(r.id, r.transcripts);
  const runs: RunState[] = saved.map(({ transcripts: _t, ...r }) => ({ ...r, sessionStart: undefined }));
  const { set } = useStudio.getState();
  set({ runs });
  const interrupted = runs.find((r) => r.status === 'running' || r.status === 'starting');
  if (interrupted) launch(interrupted, true);
  else {
    const last = runs.at(-1);
    if (last) set({ activeRun: last.id });
    startNextQueued();
  }
}

function request<T extends Reply>(id: string, make: (r: RunState, reqId: string) => ToTrain): Promise<T> {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  if (!r) return Promise.reject(new Error(`no run ${id}`));
  const reqId = `x${++reqSeq}`;
  return new Promise((resolve, reject) => {
    requests.set(reqId, { resolve: resolve as (m: Reply) => void, reject });
    send(make(withModelFiles(r), reqId));
  });
}

/** Export run `id`; snr > 0 prunes first, and with `measure` the eval sets are decoded with the pruned adapter. */
export function exportRun(id: string, snr: number, measure = false): Promise<Extract<FromTrain, { type: 'exported' }>> {
  return request(id, (r, reqId) => ({ type: 'export', id: reqId, runId: id, config: r.config, data: r.data, snr, measure }));
}

/** Try it: a clip (encoder states already cached under `key`) transcribed by the frozen model and by run `id`'s adapter. */
export function tryClip(id: string, clip: { key: string; language: string }): Promise<Extract<FromTrain, { type: 'tried' }>> {
  return request(id, (r, reqId) => ({ type: 'try', id: reqId, runId: id, config: r.config, data: r.data, clip }));
}

// Try it: a clip's transcript by the frozen model and by the adapted model side by side, with the word
// differences highlighted — an eval clip (from the run's evaluations: step 0 vs the latest), or your own
// clip, dropped as a file or recorded from the microphone (encoded here, decoded on the WGSL engine).
import { useRef, useState } from 'react';
import { loadAudio16k } from '../../audio';
import { utteranceKey } from '../../encoder/encoder';
import { getClient } from '../actions';
import { baseLocationFor, loadBase, transcribeWithBase } from '../exportBase';
import type { LoadProgress } from '../../pipeline/transcriber';
import { ProgressBar } from './ProgressBar';
import { transcripts, tryClip } from '../training';
import { useStudio, type RunState } from '../store';

/** Word-level diff (LCS) of a → b: each word of a kept or deleted, each of b kept or inserted. */
export function wordDiff(a: string, b: string): { del: boolean[]; ins: boolean[] } {
  const x = a.split(/\s+/).filter(Boolean),
    y = b.split(/\s+/).filter(Boolean);
  const norm = (w: string) => w.toLowerCase().replace(/[^\p{L}\p{N}']/gu, '');
  const L = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--)
    for (let j = y.length - 1; j >= 0; j--) L[i][j] = norm(x[i]) === norm(y[j]) ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const del = new Array(x.length).fill(true),
    ins = new Array(y.length).fill(true);
  let i = 0,
    j = 0;
  while (i < x.length && j < y.length) {
    if (norm(x[i]) === norm(y[j])) ((del[i] = false), (ins[j] = false), i++, j++);
    else if (L[i + 1][j] >= L[i][j + 1]) i++;
    else j++;
  }
  return { del, ins };
}

function Words({ text, marks, cls }: { text: string; marks: boolean[]; cls: string }) {
  const words = text.split(/\s+/).filter(Boolean);
  return (
    <span>
      {words.map((w, i) => (
        <span key={i}>
          <span className={marks[i] ? cls : ''}>{w}</span>{' '}
        </span>
      ))}
    </span>
  );
}

function Compare({
  reference,
  frozen,
  adapted,
  testid = 'try',
  labels = ['base (frozen)', 'adapted'],
}: {
  reference?: string;
  frozen: string;
  adapted: string;
  testid?: string;
  labels?: [string, string];
}) {
  const d = wordDiff(frozen, adapted);
  return (
    <table>
      <tbody>
        {reference !== undefined && (
          <tr>
            <th>reference</th>
            <td>{reference}</td>
          </tr>
        )}
        <tr>
          <th>{labels[0]}</th>
          <td data-testid={`${testid}-base`}>
            <Words text={frozen} marks={d.del} cls="diff-del" />
          </td>
        </tr>
        <tr>
          <th>{labels[1]}</th>
          <td data-testid={`${testid}-adapted`}>
            <Words text={adapted} marks={d.ins} cls="diff-ins" />
          </td>
        </tr>
      </tbody>
    </table>
  );
}

type OwnState =
  | { status: 'idle' }
  | { status: 'busy'; message: string }
  | {
      status: 'done';
      name: string;
      step: number;
      frozen: string;
      adapted: string;
      entropy: number;
      disagreement: number | null;
      samples: string[];
    }
  | { status: 'error'; message: string };

/** Your own clip: a file or a microphone recording → 16 kHz → frozen encoder (model worker) → both decoders. */
function OwnClip({ run }: { run: RunState }) {
  const model = useStudio((s) => s.model);
  const languages = [...new Set(['en', ...[...run.data.train, ...run.data.eval.flatMap((e) => e.utts)].map((u) => u.language ?? 'en')])];
  const [language, setLanguage] = useState(languages[0]);
  const [own, setOwn] = useState<OwnState>({ status: 'idle' });
  const rec = useRef<MediaRecorder | null>(null);
  const [recording, setRecording] = useState(false);
  const finished = run.status === 'done' || run.status === 'stopped' || (run.status === 'error' && run.lastCheckpointStep !== undefined);
  const go = async (name: string, bytes: ArrayBuffer) => {
    try {
      setOwn({ status: 'busy', message: `decoding ${name}` });
      const samples = await loadAudio16k(bytes, name);
      if (samples.length > 30 * 16000)
        throw new Error(`${name}: ${(samples.length / 16000).toFixed(1)} s is longer than Whisper's 30-s window`);
      const key = utteranceKey(samples);
      setOwn({ status: 'busy', message: 'frozen encoder' });
      await getClient().encode(samples, key);
      setOwn({
        status: 'busy',
        message: `greedy decoding: frozen model, the adapter${run.config.method === 'blora' ? ', and posterior samples of it' : ''}`,
      });
      const r = await tryClip(run.id, { key, language });
      setOwn({
        status: 'done',
        name,
        step: r.step,
        frozen: r.frozen,
        adapted: r.adapted,
        entropy: r.entropy,
        disagreement: r.disagreement,
        samples: r.samples,
      });
    } catch (e) {
      setOwn({ status: 'error', message: (e as Error).message });
    }
  };
  const record = async () => {
    if (rec.current) return rec.current.stop();
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const r = new MediaRecorder(stream);
      const chunks: Blob[] = [];
      r.ondataavailable = (e) => chunks.push(e.data);
      r.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        rec.current = null;
        setRecording(false);
        void new Blob(chunks, { type: r.mimeType }).arrayBuffer().then((b) => go('your recording', b));
      };
      rec.current = r;
      r.start();
      setRecording(true);
      setTimeout(() => rec.current === r && r.stop(), 30_000); // Whisper hears at most 30 s
    } catch (e) {
      setOwn({ status: 'error', message: `microphone: ${(e as Error).message}` });
    }
  };
  const ready = model.status === 'ready' && finished && own.status !== 'busy';
  return (
    <div data-testid="try-own">
      <h3>Your clip</h3>
      <div className="row">
        <input
          type="file"
          accept="audio/*,.wav,.flac,.mp3,.ogg,.webm"
          disabled={!ready}
          data-testid="try-clip-input"
          onChange={async (e) => {
            const f = e.target.files?.[0];
            if (f) await go(f.name, await f.arrayBuffer());
          }}
        />
        <button disabled={!ready && !recording} onClick={() => void record()} data-testid="try-record">
          {recording ? 'Stop recording' : 'Record'}
        </button>
        <label className="small">
          language{' '}
          <select value={language} onChange={(e) => setLanguage(e.target.value)} data-testid="try-language">
            {languages.map((l) => (
              <option key={l}>{l}</option>
            ))}
          </select>
        </label>
        {!finished && <span className="muted small">available when the run has finished (or is stopped)</span>}
      </div>
      {own.status === 'busy' && (
        <p className="muted" data-testid="try-own-status">
          {own.message}…
        </p>
      )}
      {own.status === 'error' && (
        <p className="error" data-testid="try-own-error">
          {own.message}
        </p>
      )}
      {own.status === 'done' && (
        <>
          <p className="muted small">
            {own.name}: adapted = run {run.name} at step {own.step}
          </p>
          <Compare frozen={own.frozen} adapted={own.adapted} testid="try-own" />
          <p className="small" data-testid="try-own-uncertainty">
            <b>How sure the adapter is:</b> mean token entropy {own.entropy.toFixed(2)} nats
            {own.disagreement !== null
              ? `; ${own.samples.length} posterior samples disagree with its transcript by ${(own.disagreement * 100).toFixed(0)} % of the words (0 %: every sample says the same)`
              : ' (LoRA has no posterior to sample)'}
          </p>
        </>
      )}
    </div>
  );
}

type BaseState =
  | { status: 'idle' }
  | { status: 'loading'; progress?: LoadProgress; startedAt: number }
  | { status: 'ready' }
  | { status: 'error'; message: string };
type ExportClip =
  | { status: 'idle' }
  | { status: 'busy'; message: string }
  | { status: 'done'; name: string; base: string; exported: string }
  | { status: 'error'; message: string };

/** The loaded model is a merged export (its blora-export.json): load its base beside it and transcribe a clip with both. */
function ExportVsBase() {
  const info = useStudio((s) => s.model.info);
  const ready = useStudio((s) => s.model.status === 'ready');
  const [baseState, setBase] = useState<BaseState>({ status: 'idle' });
  const [clip, setClip] = useState<ExportClip>({ status: 'idle' });
  const [language, setLanguage] = useState('en');
  const note = info?.exportOf;
  if (!note || !ready) return null;
  const base = baseLocationFor(note.baseModel);
  const languages = info.summary.multilingual ? ['en', 'es', 'de', 'fr'] : ['en'];
  const loadIt = async () => {
    if (!base) return;
    const startedAt = performance.now();
    setBase({ status: 'loading', startedAt });
    try {
      await loadBase(base.location, (progress) => setBase({ status: 'loading', progress, startedAt }));
      setBase({ status: 'ready' });
    } catch (e) {
      setBase({ status: 'error', message: `${base.label}: ${(e as Error).message}` });
    }
  };
  const go = async (name: string, bytes: ArrayBuffer) => {
    try {
      setClip({ status: 'busy', message: `decoding ${name}` });
      const samples = await loadAudio16k(bytes, name);
      if (samples.length > 30 * 16000)
        throw new Error(`${name}: ${(samples.length / 16000).toFixed(1)} s is longer than Whisper's 30-s window`);
      setClip({ status: 'busy', message: 'transcribing with this export' });
      const exported = await getClient().transcribe(samples, language);
      setClip({ status: 'busy', message: `transcribing with its base (${base?.label})` });
      const b = await transcribeWithBase(samples, language);
      setClip({ status: 'done', name, base: b.text, exported: exported.text });
    } catch (e) {
      setClip({ status: 'error', message: (e as Error).message });
    }
  };
  return (
    <div data-testid="try-export">
      <h3>This export vs its base</h3>
      <p className="small">
        The model loaded now is a merged {note.format === 'hf' ? 'transformers' : 'transformers.js'} export (
        {note.method === 'blora' ? 'BLoRA posterior means' : 'LoRA'}, r {note.r}, {note.modules} modules) of <b>{note.baseModel}</b>.{' '}
        {base ? (
          <>
            Its base: {base.label}
            {base.where === 'hub' ? ' (downloaded from the Hub once, then cached)' : ''}.
          </>
        ) : (
          <span className="error">No known source for this base: load it in the Model panel to compare by hand.</span>
        )}
      </p>
      {base && (
        <div className="row">
          <button
            data-testid="try-export-load-base"
            disabled={baseState.status === 'loading' || baseState.status === 'ready'}
            onClick={() => void loadIt()}
          >
            {baseState.status === 'ready' ? 'Base loaded' : 'Load the base to compare'}
          </button>
          <span data-testid="try-export-base-status" data-status={baseState.status} className="small muted">
            {baseState.status === 'error'
              ? ''
              : baseState.status === 'ready'
                ? 'ready'
                : baseState.status === 'loading'
                  ? 'loading…'
                  : 'not loaded (a second copy of the model in memory)'}
          </span>
        </div>
      )}
      {baseState.status === 'loading' && baseState.progress && (
        <ProgressBar
          label={baseState.progress.message}
          loaded={baseState.progress.loaded}
          total={baseState.progress.total}
          startedAt={baseState.startedAt}
        />
      )}
      {baseState.status === 'error' && (
        <p className="error" data-testid="try-export-base-error">
          {baseState.message}
        </p>
      )}
      {baseState.status === 'ready' && (
        <div className="row">
          <input
            type="file"
            accept="audio/*,.wav,.flac,.mp3,.ogg,.webm"
            disabled={clip.status === 'busy'}
            data-testid="try-export-clip-input"
            onChange={async (e) => {
              const f = e.target.files?.[0];
              if (f) await go(f.name, await f.arrayBuffer());
            }}
          />
          <label className="small">
            language{' '}
            <select value={language} onChange={(e) => setLanguage(e.target.value)} data-testid="try-export-language">
              {languages.map((l) => (
                <option key={l}>{l}</option>
              ))}
            </select>
          </label>
        </div>
      )}
      {clip.status === 'busy' && <p className="muted">{clip.message}…</p>}
      {clip.status === 'error' && (
        <p className="error" data-testid="try-export-error">
          {clip.message}
        </p>
      )}
      {clip.status === 'done' && (
        <>
          <p className="muted small">{clip.name}: greedy decoding, both on onnxruntime-web</p>
          <Compare frozen={clip.base} adapted={clip.exported} testid="try-export" labels={[`base (${note.baseModel})`, 'this export']} />
        </>
      )}
    </div>
  );
}

export function TryView() {
  const runs = useStudio((s) => s.runs);
  const activeId = useStudio((s) => s.activeRun);
  const run = runs.find((r) => r.id === activeId) ?? runs.at(-1);
  const [pick, setPick] = useState<string>('');
  const t = run ? transcripts.get(run.id) : undefined;
  const clips = t
    ? Object.entries(t).flatMap(([set, bySteps]) => {
        const steps = Object.keys(bySteps)
          .map(Number)
          .sort((a, b) => a - b);
        const base = bySteps[steps[0]] ?? [];
        const last = bySteps[steps.at(-1)!] ?? [];
        return steps[0] === 0 ? base.map((b) => ({ set, step: steps.at(-1)!, base: b, adapted: last.find((x) => x.id === b.id) })) : [];
      })
    : [];
  const cur = clips.find((c) => `${c.set}/${c.base.id}` === pick) ?? clips[0];
  return (
    <section className="panel" data-testid="try-view">
      <h2>Try it</h2>
      <ExportVsBase />
      {!cur ? (
        <p className="muted">Transcripts appear here after a run has evaluated its eval sets (before training and at the eval steps).</p>
      ) : (
        <>
          <div className="row">
            <select value={`${cur.set}/${cur.base.id}`} onChange={(e) => setPick(e.target.value)} aria-label="clip" data-testid="try-clip">
              {clips.map((c) => (
                <option key={`${c.set}/${c.base.id}`} value={`${c.set}/${c.base.id}`}>
                  {c.base.id} ({c.set})
                </option>
              ))}
            </select>
            <span className="muted small">
              run {run!.name}, adapted = step {cur.step}
            </span>
          </div>
          <Compare reference={cur.base.reference} frozen={cur.base.hypothesis} adapted={cur.adapted?.hypothesis ?? ''} />
        </>
      )}
      {run && <OwnClip run={run} />}
    </section>
  );
}

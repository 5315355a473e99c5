// The demo clips: listen, transcribe with the frozen model, compare with the reference (WER).
import { transcribeBytes, transcribeClip } from '../actions';
import { useStudio, type ClipResult } from '../store';

function Result({ r }: { r?: ClipResult }) {
  if (!r) return null;
  if (r.status === 'decoding' || r.status === 'running')
    return <span className="muted">{r.status === 'decoding' ? 'decoding audio…' : 'transcribing…'}</span>;
  if (r.status === 'error')
    return (
      <span className="error" data-testid="clip-error">
        {r.error}
      </span>
    );
  const t = r.transcript!;
  return (
    <span>
      <span data-testid="transcript">{t.text}</span>
      <br />
      <span className="muted small">
        {r.wer !== undefined && <>WER {(r.wer * 100).toFixed(1)} % · </>}
        {t.tokens} tokens{t.truncated ? ' (hit the token cap)' : ''} · features {t.timing.featuresMs.toFixed(0)} ms · encoder{' '}
        {t.timing.encoderCached ? 'cached' : `${(t.timing.encoderMs / 1000).toFixed(1)} s`} · decoding{' '}
        {(t.timing.decodeMs / 1000).toFixed(1)} s
      </span>
    </span>
  );
}

export function DemoClips() {
  const clips = useStudio((s) => s.clips);
  const clipsError = useStudio((s) => s.clipsError);
  const results = useStudio((s) => s.results);
  const ready = useStudio((s) => s.model.status === 'ready');
  return (
    <section className="panel" data-testid="demo-panel">
      <h2>Demo clips</h2>
      {clipsError && <p className="error">{clipsError}</p>}
      <table>
        <thead>
          <tr>
            <th>clip</th>
            <th>reference</th>
            <th>transcript (frozen Whisper)</th>
          </tr>
        </thead>
        <tbody>
          {clips.map((c) => (
            <tr key={c.id} data-testid={`clip-${c.id}`}>
              <td>
                <div>
                  <b>{c.id}</b> <span className="badge">{c.languages?.join('+') ?? c.language}</span>{' '}
                  <span className="muted small">
                    {c.duration.toFixed(1)} s · {c.domain}
                  </span>
                </div>
                <audio controls src={c.url} preload="none" />
                <div>
                  <button
                    disabled={!ready || results[c.id]?.status === 'running'}
                    onClick={() => transcribeClip(c)}
                    data-testid="transcribe"
                  >
                    Transcribe
                  </button>
                </div>
              </td>
              <td>{c.text}</td>
              <td>
                <Result r={results[c.id]} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Your own clip</h3>
      <div className="row">
        <input
          type="file"
          accept="audio/*,.wav,.flac,.mp3,.ogg"
          data-testid="own-clip-input"
          disabled={!ready}
          onChange={async (e) => {
            const f = e.target.files?.[0];
            if (f) await transcribeBytes('own', await f.arrayBuffer(), f.name, null);
          }}
        />
        <span className="muted small">wav / flac / mp3 / ogg; language detected automatically</span>
      </div>
      <div data-testid="own-result">
        <Result r={results.own} />
      </div>
    </section>
  );
}

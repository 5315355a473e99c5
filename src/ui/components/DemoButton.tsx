// The Setup tab's one-click demo (src/ui/demo.ts): what it does, how long it will take here (and on a laptop
// GPU), and its progress once started.
import { useState } from 'react';
import { assumedSpeed, describeEstimate, formatDuration } from '../estimate';
import { demoEstimate, demoSizeOf, runDemo } from '../demo';
import { useStudio } from '../store';

export function DemoButton() {
  const model = useStudio((s) => s.model);
  const gpu = useStudio((s) => s.gpu);
  const demo = useStudio((s) => s.demo);
  const runs = useStudio((s) => s.runs);
  useStudio((s) => s.runs.filter((r) => r.status === 'done').length); // a finished run measures the speed
  const [error, setError] = useState<string | null>(null);
  const size = demoSizeOf(globalThis.location?.search ?? '');
  const est = demoEstimate({ model, gpu }, size);
  const laptop = est && est.speed.train < 50e9 ? demoEstimate({ model, gpu }, size, assumedSpeed('laptop-gpu')) : null;
  const mine = demo ? runs.filter((r) => demo.runIds.includes(r.id)) : [];
  const busy = !!demo && demo.stage !== 'done';
  return (
    <section className="panel demo-cta" data-testid="demo-cta" data-size={size.name}>
      <div className="row" style={{ marginTop: 0 }}>
        <button
          data-testid="demo-run"
          disabled={model.status !== 'ready' || busy}
          onClick={() => {
            setError(null);
            runDemo(size).catch((e) => {
              setError((e as Error).message);
              useStudio.getState().set({ demo: undefined });
            });
          }}
        >
          See BLoRA forget less
        </button>
        <span className="small">
          one click: loads the demo corpus ({size.train} code-switched clips to train on, {size.newEval} code-switched and {size.base}{' '}
          monolingual clips to evaluate), trains LoRA and BLoRA at β {size.betas.join(' and ')} for {size.steps} steps each — over-trained
          on purpose, so that LoRA forgets the base domain — and shows the comparison. The datasets listed below are replaced.
        </span>
      </div>
      <p className="small muted" data-testid="demo-estimate" data-seconds={est ? Math.ceil(est.seconds) : undefined}>
        {est ? (
          <>
            Time for the three runs: {describeEstimate(est)}
            {laptop ? `; on a laptop GPU about ${formatDuration(laptop.seconds)} (${laptop.speed.note})` : ''}.
          </>
        ) : (
          'Time: estimated once the model is loaded.'
        )}
      </p>
      {demo && (
        <p className="small" data-testid="demo-status" data-stage={demo.stage}>
          Demo: {demo.stage === 'queued' ? mine.map((r) => `${r.name} ${r.status}`).join(' · ') : demo.stage}
        </p>
      )}
      {error && <p className="error">{error}</p>}
    </section>
  );
}

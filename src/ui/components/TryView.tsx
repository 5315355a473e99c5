// Try it: an eval clip's transcript by the frozen model (step 0) and by the adapted model (latest
// evaluation) side by side, with the word differences highlighted.
import { useState } from 'react';
import { transcripts } from '../training';
import { useStudio } from '../store';

/** Word-level diff (LCS) of a → b: each word of a kept or deleted, each of b kept or inserted. */
export function wordDiff(a: string, b: string): { del: boolean[]; ins: boolean[] } {
  const x = a.split(/\s+/).filter(Boolean), y = b.split(/\s+/).filter(Boolean);
  const norm = (w: string) => w.toLowerCase().replace(/[^\p{L}\p{N}']/gu, '');
  const L = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--) for (let j = y.length - 1; j >= 0; j--) L[i][j] = norm(x[i]) === norm(y[j]) ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const del = new Array(x.length).fill(true), ins = new Array(y.length).fill(true);
  let i = 0, j = 0;
  while (i < x.length && j < y.length) {
    if (norm(x[i]) === norm(y[j])) (del[i] = false), (ins[j] = false), i++, j++;
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

export function TryView() {
  const runs = useStudio((s) => s.runs);
  const activeId = useStudio((s) => s.activeRun);
  const run = runs.find((r) => r.id === activeId) ?? runs.at(-1);
  const [pick, setPick] = useState<string>('');
  const t = run ? transcripts.get(run.id) : undefined;
  const clips = t
    ? Object.entries(t).flatMap(([set, bySteps]) => {
        const steps = Object.keys(bySteps).map(Number).sort((a, b) => a - b);
        const base = bySteps[steps[0]] ?? [];
        const last = bySteps[steps.at(-1)!] ?? [];
        return steps[0] === 0 ? base.map((b) => ({ set, step: steps.at(-1)!, base: b, adapted: last.find((x) => x.id === b.id) })) : [];
      })
    : [];
  const cur = clips.find((c) => `${c.set}/${c.base.id}` === pick) ?? clips[0];
  return (
    <section className="panel" data-testid="try-view">
      <h2>Try it</h2>
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
            <span className="muted small">run {run!.name}, adapted = step {cur.step}</span>
          </div>
          {(() => {
            const adapted = cur.adapted?.hypothesis ?? '';
            const d = wordDiff(cur.base.hypothesis, adapted);
            return (
              <table>
                <tbody>
                  <tr>
                    <th>reference</th>
                    <td>{cur.base.reference}</td>
                  </tr>
                  <tr>
                    <th>base (frozen)</th>
                    <td data-testid="try-base">
                      <Words text={cur.base.hypothesis} marks={d.del} cls="diff-del" />
                    </td>
                  </tr>
                  <tr>
                    <th>adapted</th>
                    <td data-testid="try-adapted">
                      <Words text={adapted} marks={d.ins} cls="diff-ins" />
                    </td>
                  </tr>
                </tbody>
              </table>
            );
          })()}
        </>
      )}
    </section>
  );
}

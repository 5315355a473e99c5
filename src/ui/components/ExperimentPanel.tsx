// The experiment: method, adapter targets, r, α, β (log-scale slider), σ_p, estimator, lr, steps,
// batch, seed, eval interval — an experiment.json (src/train/config.ts) edited in place.
import { ADAPTER_TARGETS, type AdapterTarget, type BayesEstimator, type RhoBInit } from '../../engine/adapters';
import { type EvalSelect, validateExperiment, type ExperimentConfig } from '../../train/config';
import { useState } from 'react';
import { formatPlan } from '../../engine/memory-plan';
import { memoryBudgetGiB, setMemoryBudgetGiB, studioPlan } from '../memoryPlan';
import { queueSweep, startRun } from '../training';
import { useStudio } from '../store';
import { assumedSpeed, describeEstimate, estimateRun, studioEstimate, studioShape } from '../estimate';

const BETA_MIN_LOG = -8;
const BETA_MAX_LOG = 0;

/** The β of a log10 slider position, to 3 significant digits (the Experiment panel's and the Run view's). */
export const betaFromSlider = (log10: string): number => Number((10 ** Number(log10)).toPrecision(3));

/** The experiment as the studio will run it, for validation: datasets stand for data.train / data.dev. */
function studioConfig(cfg: ExperimentConfig, hasDev: boolean): ExperimentConfig {
  return { ...cfg, data: { ...cfg.data, train: 'studio', ...(hasDev ? { dev: [{ path: 'studio' }] } : {}) } };
}

export function formatBeta(b: number): string {
  return b === 0 ? '0' : b.toExponential(1).replace('e', 'e').replace('.0e', 'e');
}

function Num(props: {
  label: string;
  value: number;
  onChange: (v: number) => void;
  step?: number;
  min?: number;
  testid?: string;
  title?: string;
}) {
  return (
    <label className="field" title={props.title}>
      <span>{props.label}</span>
      <input
        type="number"
        value={Number.isFinite(props.value) ? props.value : ''}
        step={props.step ?? 'any'}
        min={props.min}
        data-testid={props.testid}
        onChange={(e) => props.onChange(e.target.value === '' ? NaN : Number(e.target.value))}
      />
    </label>
  );
}

export function ExperimentPanel() {
  const cfg = useStudio((s) => s.experiment);
  const sweep = useStudio((s) => s.sweep);
  const set = useStudio((s) => s.set);
  const up = (f: (c: ExperimentConfig) => void) => {
    const c = structuredClone(useStudio.getState().experiment);
    f(c);
    set({ experiment: c });
  };
  const errors = validateExperiment(
    studioConfig(
      cfg,
      useStudio((s) => s.datasets.some((d) => d.role === 'dev')),
    ),
  );
  const blora = cfg.method === 'blora';
  const betaLog = Math.log10(Math.max(cfg.adapter.beta, 10 ** BETA_MIN_LOG));
  return (
    <section className="panel" data-testid="experiment-panel">
      <h2>Experiment</h2>
      <div className="grid">
        <label className="field">
          <span>name</span>
          <input value={cfg.name} onChange={(e) => up((c) => (c.name = e.target.value))} data-testid="exp-name" />
        </label>
        <label className="field">
          <span>method</span>
          <select value={cfg.method} onChange={(e) => up((c) => (c.method = e.target.value as 'lora' | 'blora'))} data-testid="exp-method">
            <option value="blora">BLoRA (Bayesian LoRA)</option>
            <option value="lora">LoRA</option>
          </select>
        </label>
        <Num label="r (rank)" value={cfg.adapter.r} min={1} step={1} onChange={(v) => up((c) => (c.adapter.r = v))} testid="exp-r" />
        <Num label="α" value={cfg.adapter.alpha} onChange={(v) => up((c) => (c.adapter.alpha = v))} testid="exp-alpha" />
        <Num
          label="dropout"
          value={cfg.adapter.dropout}
          step={0.01}
          onChange={(v) => up((c) => (c.adapter.dropout = v))}
          testid="exp-dropout"
        />
        <Num label="learning rate" value={cfg.optim.lr} onChange={(v) => up((c) => (c.optim.lr = v))} testid="exp-lr" />
        <Num label="steps" value={cfg.optim.steps} min={1} step={1} onChange={(v) => up((c) => (c.optim.steps = v))} testid="exp-steps" />
        <Num
          label="warm-up steps"
          value={cfg.optim.warmupSteps}
          min={0}
          step={1}
          onChange={(v) => up((c) => (c.optim.warmupSteps = v))}
          testid="exp-warmup"
        />
        <Num
          label="batch (utterances)"
          value={cfg.optim.batchSize}
          min={1}
          step={1}
          onChange={(v) => up((c) => (c.optim.batchSize = v))}
          testid="exp-batch"
        />
        <Num label="seed" value={cfg.seed} min={0} step={1} onChange={(v) => up((c) => (c.seed = v))} testid="exp-seed" />
        <Num
          label="eval every (steps)"
          value={cfg.eval.interval}
          min={0}
          step={1}
          onChange={(v) => up((c) => (c.eval.interval = v))}
          testid="exp-eval-interval"
          title="0: only before and after training"
        />
        <Num
          label="max tokens (eval)"
          value={cfg.eval.maxNewTokens}
          min={1}
          step={1}
          onChange={(v) => up((c) => (c.eval.maxNewTokens = v))}
          testid="exp-max-tokens"
        />
        <Num
          label="dev CE every (steps)"
          value={cfg.eval.devInterval}
          min={0}
          step={1}
          onChange={(v) => up((c) => (c.eval.devInterval = v))}
          testid="exp-dev-interval"
          title="teacher-forced CE of the datasets of role dev, with the posterior means (0: none); the authors evaluate every 100 steps"
        />
        <Num
          label="posterior samples (uncertainty)"
          value={cfg.eval.posteriorSamples}
          min={0}
          step={1}
          onChange={(v) => up((c) => (c.eval.posteriorSamples = v))}
          testid="exp-posterior-samples"
          title="after training, decode the eval sets with K samples of the BLoRA posterior too: the Run view lists where the adapter is unsure (0: off)"
        />
        <label
          className="field"
          title="the adapter the run ends with (its final evaluation, export and Try it): the last step's, or the one of the lowest dev CE — the authors keep the best by dev loss"
        >
          <span>result adapter</span>
          <select
            value={cfg.eval.select}
            onChange={(e) => up((c) => (c.eval.select = e.target.value as EvalSelect))}
            data-testid="exp-select"
          >
            <option value="last">last step</option>
            <option value="dev-ce">lowest dev CE</option>
          </select>
        </label>
      </div>
      <fieldset className={blora ? '' : 'disabled'} disabled={!blora}>
        <legend>BLoRA posterior</legend>
        <div className="grid">
          <label className="field wide">
            <span>
              β (KL weight) = <b data-testid="exp-beta-value">{formatBeta(cfg.adapter.beta)}</b>
            </span>
            <input
              type="range"
              min={BETA_MIN_LOG}
              max={BETA_MAX_LOG}
              step={0.25}
              value={betaLog}
              aria-label="log10 β"
              data-testid="exp-beta"
              onChange={(e) =>
                up((c) => {
                  c.adapter.beta = betaFromSlider(e.target.value);
                  delete c.adapter.klScale; // β is the value now; klScale was another spelling of it
                })
              }
            />
            <span
              className="muted small"
              data-testid="exp-kl-scale"
              title="continual-asr whisper/train_bnnlora.py: each micro-batch adds kl_scale / gradient_accumulation · KL, so β on the mean CE = kl_scale / GA"
            >
              log scale, 1e{BETA_MIN_LOG} … 1e{BETA_MAX_LOG}; the authors' kl_scale = β × {cfg.optim.gradAccum} micro-batch
              {cfg.optim.gradAccum === 1 ? '' : 'es'} = {formatBeta(cfg.adapter.beta * cfg.optim.gradAccum)}
            </span>
          </label>
          <Num
            label="σ_p (prior)"
            value={cfg.adapter.sigmaPrior}
            onChange={(v) => up((c) => (c.adapter.sigmaPrior = v))}
            testid="exp-sigma"
          />
          <label className="field">
            <span>noise estimator</span>
            <select
              value={cfg.adapter.estimator}
              onChange={(e) => up((c) => (c.adapter.estimator = e.target.value as BayesEstimator))}
              data-testid="exp-estimator"
            >
              <option value="flipout">flipout</option>
              <option value="bbb">Bayes by backprop</option>
              <option value="lrt">local reparameterization</option>
            </select>
          </label>
          <label
            className="field"
            title="initial ρ_B (σ = softplus(ρ)): U(−5.5, −4.5) draws it as ρ_A, so B's noise is live from the first step (the authors' code at the paper's date, the default); −50 leaves B without noise until training raises ρ_B (their code today)"
          >
            <span>ρ_B at start</span>
            <select
              value={cfg.adapter.rhoBInit}
              onChange={(e) => up((c) => (c.adapter.rhoBInit = e.target.value as RhoBInit))}
              data-testid="exp-rho-b-init"
            >
              <option value="uniform">U(−5.5, −4.5), as ρ_A (the paper's)</option>
              <option value="constant">−50 (B noiseless at first)</option>
            </select>
          </label>
          <label
            className="field"
            title="σ stays at its initial value and only μ trains: the authors' adapters are bf16, where AdamW's steps are below half a ulp of ρ ≈ −5, so their ρ never moves"
          >
            <span>freeze ρ (σ)</span>
            <input
              type="checkbox"
              checked={cfg.adapter.freezeRho}
              onChange={(e) => up((c) => (c.adapter.freezeRho = e.target.checked))}
              data-testid="exp-freeze-rho"
            />
          </label>
          <label
            className="field"
            title="the KL's log σ: exact, or log(σ + 1e-6) as the authors' kl_loss (changes the KL of a noiseless factor, ρ_B = −50, from ~45 to ~9 nats an element, and removes its push on ρ)"
          >
            <span>KL log σ</span>
            <select
              value={String(cfg.adapter.klLogEps)}
              onChange={(e) => up((c) => (c.adapter.klLogEps = Number(e.target.value)))}
              data-testid="exp-kl-log-eps"
            >
              <option value="0">exact log σ</option>
              <option value="0.000001">log(σ + 1e-6), the authors'</option>
            </select>
          </label>
          <label className="field">
            <span>Bayesian A only</span>
            <input
              type="checkbox"
              checked={cfg.adapter.bayesianAOnly}
              onChange={(e) => up((c) => (c.adapter.bayesianAOnly = e.target.checked))}
            />
          </label>
        </div>
      </fieldset>
      <fieldset>
        <legend>targets (decoder Linear layers)</legend>
        <div className="row">
          {ADAPTER_TARGETS.map((t) => (
            <label key={t} className="small">
              <input
                type="checkbox"
                checked={cfg.adapter.targets.includes(t)}
                onChange={(e) =>
                  up((c) => {
                    c.adapter.targets = e.target.checked
                      ? [...c.adapter.targets, t]
                      : c.adapter.targets.filter((x) => x !== (t as AdapterTarget));
                  })
                }
              />{' '}
              {t}
            </label>
          ))}
        </div>
      </fieldset>
      {errors.length > 0 && <p className="error">{errors.join('; ')}</p>}
    </section>
  );
}

/** Step 4: the memory plan and the estimated time of the run, then Start (or a β sweep). */
export function StartPanel() {
  const cfg = useStudio((s) => s.experiment);
  const sweep = useStudio((s) => s.sweep);
  const set = useStudio((s) => s.set);
  const errors = validateExperiment(
    studioConfig(
      cfg,
      useStudio((s) => s.datasets.some((d) => d.role === 'dev')),
    ),
  );
  const blora = cfg.method === 'blora';
  // the memory plan of this run (re-planned on every change; refused at Start when it cannot fit)
  const [budget, setBudget] = useState(memoryBudgetGiB);
  const model = useStudio((s) => s.model);
  const datasets = useStudio((s) => s.datasets);
  const gpu = useStudio((s) => s.gpu);
  useStudio((s) => s.runs.filter((r) => r.status === 'done').length); // a finished run measures the speed: re-estimate
  let plan: ReturnType<typeof studioPlan> = null;
  try {
    plan = errors.length ? null : studioPlan({ model, datasets, gpu }, cfg, budget > 0 ? budget : memoryBudgetGiB());
  } catch {
    plan = null; // a config the validator let through but the planner cannot shape: Start reports it
  }
  const est = errors.length ? null : studioEstimate({ model, gpu, datasets }, cfg);
  // a CPU behind the adapter (well under a GPU's rate): say what a laptop GPU would take too
  const shape = est && est.speed.train < 50e9 ? studioShape({ model, gpu, datasets }, cfg) : null;
  const laptop = shape ? estimateRun(shape, assumedSpeed('laptop-gpu')) : undefined;
  return (
    <section className="panel" data-testid="start-panel">
      <h2>Start</h2>
      <div className="row">
        <Num
          label="GPU memory budget (GiB)"
          value={budget}
          min={0.25}
          step={0.5}
          title="WebGPU does not tell a page how much memory the GPU has: the plan checks against this"
          onChange={(v) => {
            setBudget(v);
            setMemoryBudgetGiB(v);
          }}
          testid="exp-memory-budget"
        />
      </div>
      {est ? (
        <p
          className="small"
          data-testid="run-estimate"
          data-kind={est.speed.source === 'measured' ? 'measured' : 'estimate'}
          data-seconds={Math.ceil(est.seconds)}
        >
          <b>{est.speed.source === 'measured' ? 'Time (measured on this adapter):' : 'Time (estimate):'}</b> {describeEstimate(est, laptop)}
        </p>
      ) : (
        <p className="small muted" data-testid="run-estimate" data-kind="none">
          Time: estimated once a model is loaded and a training set is encoded.
        </p>
      )}
      {plan && (
        <p className={plan.fits ? 'small muted' : 'error'} data-testid="memory-plan">
          Memory plan: {formatPlan(plan)}
        </p>
      )}
      <div className="row">
        <button disabled={errors.length > 0} onClick={() => startRun(cfg)} data-testid="start-run">
          Start {cfg.method === 'blora' ? 'BLoRA' : 'LoRA'} run
        </button>
        <input
          value={sweep}
          onChange={(e) => set({ sweep: e.target.value })}
          aria-label="β values of the sweep"
          data-testid="sweep-betas"
          size={28}
        />
        <button
          disabled={errors.length > 0 || !blora}
          onClick={() => queueSweep(cfg, sweep)}
          data-testid="queue-sweep"
          title="one BLoRA run per β, same seed and data"
        >
          Queue β sweep
        </button>
      </div>
    </section>
  );
}

/**
 * Round 30 (docs/benchmarks.md Validity "Round 30 (valid30)"): does the latent filter's global fit converge, and
 * what does each way of making it converge gain (nats) for how many likelihood passes and CPU-seconds? On a fit
 * sample the validity bench saved (`FIT_SAMPLE_OUT=file npx tsx bench/validity.bench.ts`), with the options
 * `mastery train served` fits by default after its emission choice (logistic, concentration held at 4, the floor
 * forgetting). Each method starts from the same point and runs in this process one after the other; CPU is the
 * process's user + system time over the method.
 *
 *   SAMPLE=/tmp/valid30/samples/s4.json npx tsx bench/latentGlobalFit.bench.ts
 *   METHODS=budget,converged ...   # the default runs all of: budget, polish, nm3000, restarts, converged
 */
import { readFileSync } from "node:fs";
import {
  LATENT_AUTO_CONCENTRATION,
  LATENT_FIT_BUDGET,
  LATENT_GLOBAL_POLISH,
  type LatentSequence,
  latentGlobalObjective,
  polishGlobalFit,
} from "../models/latentFilter.ts";
import { nelderMead } from "../models/nelderMead.ts";
import { quasiNewton } from "../models/quasiNewton.ts";

const file = process.env.SAMPLE;
if (file === undefined || file === "")
  throw new Error(
    "SAMPLE must name a fit sample (JSON array of sequences): write one with FIT_SAMPLE_OUT=file npx tsx bench/validity.bench.ts",
  );
const sequences = JSON.parse(readFileSync(file, "utf8")) as LatentSequence[];
const obj = latentGlobalObjective(sequences, {
  emission: "logistic",
  fixedConcentration: LATENT_AUTO_CONCENTRATION,
  forgetting: "floor",
});
const n = obj.observations;
const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const nmOpts = (maxEvaluations: number, step: number) => ({
  step,
  maxEvaluations,
  stallTolerance: LATENT_FIT_BUDGET.stallTolerance,
  fTolerance: 1e-7,
  xTolerance: 1e-3,
});
const gradMax = (x: Float64Array): number => {
  const h = LATENT_GLOBAL_POLISH.gradientStep;
  let m = 0;
  const q = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    q[i] = x[i]! + h;
    const up = obj.nll(q);
    q[i] = x[i]! - h;
    const down = obj.nll(q);
    q[i] = x[i]!;
    m = Math.max(m, Math.abs((up - down) / (2 * h)));
  }
  return m;
};

type Method = () => { x: Float64Array; evaluations: number; note: string };
const methods: Record<string, Method> = {
  // Rounds 4-29: one Nelder-Mead of LATENT_FIT_BUDGET passes from the centre (step 0.6).
  budget: () => {
    const r = nelderMead(obj.nll, obj.centre, nmOpts(LATENT_FIT_BUDGET.maxEvaluations, 0.6));
    return { x: r.x, evaluations: r.evaluations, note: `nm stop ${r.stop}` };
  },
  // The candidate: the budget's Nelder-Mead, then BFGS with central differences (LATENT_GLOBAL_POLISH).
  polish: () => {
    const r = nelderMead(obj.nll, obj.centre, nmOpts(LATENT_FIT_BUDGET.maxEvaluations, 0.6));
    const q = quasiNewton(obj.nll, r.x, LATENT_GLOBAL_POLISH);
    return {
      x: q.x,
      evaluations: r.evaluations + q.evaluations,
      note: `nm ${r.evaluations} + bfgs ${q.evaluations} (${q.iterations} steps, stop ${q.stop})`,
    };
  },
  // The product's `--latent-global-fit converged` (models/latentFilter.ts polishGlobalFit): the budget's
  // Nelder-Mead, up to 4 restarts, then BFGS.
  converged: () => {
    const r = nelderMead(obj.nll, obj.centre, nmOpts(LATENT_FIT_BUDGET.maxEvaluations, 0.6));
    const p = polishGlobalFit(obj.nll, r.x, n);
    return {
      x: p.x,
      evaluations: r.evaluations + p.record.evaluations,
      note: `nm ${r.evaluations} + ${p.record.evaluations} (${p.record.restarts} restarts, ${p.record.iterations} BFGS steps, stop ${p.record.stop})`,
    };
  },
  // A larger budget alone.
  nm3000: () => {
    const r = nelderMead(obj.nll, obj.centre, nmOpts(3_000, 0.6));
    return { x: r.x, evaluations: r.evaluations, note: `nm stop ${r.stop}` };
  },
  // Restarts: Nelder-Mead of 600 passes from the last result with a fresh simplex (step 0.3), 5 rounds.
  restarts: () => {
    let x: Float64Array = Float64Array.from(obj.centre);
    let ev = 0;
    const stops: string[] = [];
    for (let r = 0; r < 5; r++) {
      const res = nelderMead(obj.nll, x, nmOpts(600, r === 0 ? 0.6 : 0.3));
      ev += res.evaluations;
      x = res.x;
      stops.push(res.stop);
    }
    return { x, evaluations: ev, note: `5 x nm 600, stops ${stops.join(",")}` };
  },
};

const names = (process.env.METHODS ?? "budget,polish,nm3000,restarts,converged").split(",");
console.log(
  `${file}: ${sequences.length} sequences, ${n} graded observations, ${obj.centre.length} coordinates`,
);
let base: number | undefined;
for (const name of names) {
  const m = methods[name];
  if (m === undefined)
    throw new Error(`METHODS: unknown method ${name}; known: ${Object.keys(methods).join(", ")}`);
  const c0 = cpu();
  const r = m();
  const c1 = cpu();
  const ll = obj.logLik(r.x);
  base ??= ll;
  const pr = obj.params(r.x);
  console.log(
    `${name.padEnd(9)} ll ${ll.toFixed(2)} (${(ll - base).toFixed(2)} vs first) ${r.evaluations} passes ${(c1 - c0).toFixed(1)} CPU-s |grad| ${gradMax(r.x).toExponential(2)} ${r.note}; h ${pr.halfLifeDays.toFixed(1)} d floor ${pr.floor.toFixed(3)} slope ${pr.slope?.toFixed(2)} thr ${pr.threshold?.toFixed(3)} guess ${pr.guess.toFixed(3)} slip ${pr.slip.toFixed(3)} learn ${pr.learn.map((v) => v.toFixed(3)).join("/")} noise ${pr.noise.toFixed(4)} prior ${pr.priorMean.toFixed(3)}`,
  );
}

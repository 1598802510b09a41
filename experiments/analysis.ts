import {
  bootstrapRmstDiff,
  chiSquareGoodnessOfFit,
  type Interval,
  kmMedian,
  restrictedMean,
  sampleSizeMeans,
  sortSurvival,
  summarize,
  welchInterval,
} from "./stats.ts";
import type { Experiment, ExperimentConfig } from "./store.ts";

const DAY = 86_400_000;

/** One exposed student's outcomes, loaded by experiments/report.ts (times in ms since epoch). */
export interface StudentOutcome {
  arm: string;
  firstExposure: number;
  /** Quiz attempts and correct ones in [firstExposure, firstExposure + 7 days). */
  quizAttempts: number;
  quizCorrect: number;
  /** First time a score crossed the mastery threshold at or after firstExposure (null: not yet). */
  masteredAt: number | null;
}

export interface ArmReport {
  arm: string;
  isControl: boolean;
  plannedShare: number;
  exposed: number;
  accuracy: {
    /** Students whose 7-day window has ended and who attempted at least one quiz in it. */
    students: number;
    /** Window ended but no quiz attempt (excluded from the mean). */
    noQuiz: number;
    /** Window still open at asOf (excluded until it closes). */
    pending: number;
    mean: number;
    sd: number;
  };
  accuracyVsControl: (Interval & { df: number; se: number }) | null;
  mastery: {
    students: number;
    mastered: number;
    censored: number;
    medianDays: number | null;
    rmstDays: number;
  };
  masteryVsControl: Interval | null;
  /** Students with a complete week and >= 1 quiz needed in this arm for the planned power. */
  plannedStudents: number;
  verdict: string;
}

export interface ExperimentReport {
  experiment: {
    id: string;
    name: string;
    status: string;
    startAt: string;
    endAt: string | null;
    control: string;
  };
  asOf: string;
  config: ExperimentConfig;
  arms: ArmReport[];
  srm: { chi2: number; df: number; p: number; flagged: boolean; observed: number[]; expected: number[] };
  conclusive: boolean;
  summary: string;
  methods: string[];
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a");
const pts = (x: number): string =>
  Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)} pts` : "n/a";

/**
 * Outcome analysis of an experiment from per-student outcomes (pure). The student is the unit:
 * each student contributes one accuracy (correct / attempts in the week after first exposure) and
 * one time to mastery, in the arm of their first exposure.
 */
export function analyzeExperiment(
  e: Experiment,
  students: readonly StudentOutcome[],
  asOfMs: number,
  opts: { bootstrapResamples?: number; seed?: number } = {},
): ExperimentReport {
  const c = e.config;
  const control = e.arms.find((a) => a.name === e.control)!;
  const byArm = new Map<string, StudentOutcome[]>(e.arms.map((a) => [a.name, []]));
  for (const s of students) byArm.get(s.arm)?.push(s);

  const horizon = c.rmstHorizonDays;
  const sd = Math.sqrt(c.baselineAccuracy * (1 - c.baselineAccuracy));
  // Planned size per arm: each treatment vs control at the planned share ratio; the control needs
  // the largest of its pairwise requirements.
  const planned = new Map<string, number>();
  let controlNeed = 0;
  for (const a of e.arms) {
    if (a.name === control.name || a.share <= 0) continue;
    const n = sampleSizeMeans({
      sd,
      mde: c.mde,
      alpha: c.alpha,
      power: c.power,
      ratio: a.share / control.share,
    });
    planned.set(a.name, n.treatment);
    controlNeed = Math.max(controlNeed, n.control);
  }
  planned.set(control.name, controlNeed);

  const perArm = e.arms.map((a) => {
    const rows = byArm.get(a.name)!;
    const acc: number[] = [];
    let noQuiz = 0;
    let pending = 0;
    const time: number[] = [];
    const event: number[] = [];
    for (const s of rows) {
      if (s.firstExposure + 7 * DAY > asOfMs) pending++;
      else if (s.quizAttempts === 0) noQuiz++;
      else acc.push(s.quizCorrect / s.quizAttempts);
      if (s.masteredAt !== null && s.masteredAt <= asOfMs) {
        time.push((s.masteredAt - s.firstExposure) / DAY);
        event.push(1);
      } else {
        time.push(Math.max(0, (asOfMs - s.firstExposure) / DAY));
        event.push(0);
      }
    }
    return { arm: a, rows, acc, noQuiz, pending, time, event };
  });
  const ctl = perArm.find((p) => p.arm.name === control.name)!;
  const ctlAcc = summarize(ctl.acc);
  const ctlSurv = sortSurvival(ctl.time, ctl.event);

  const arms: ArmReport[] = perArm.map((p, idx) => {
    const isControl = p.arm.name === control.name;
    const accS = summarize(p.acc);
    const accVs = !isControl && accS.n >= 2 && ctlAcc.n >= 2 ? welchInterval(accS, ctlAcc) : null;
    const masteryVs =
      !isControl && p.time.length >= 2 && ctl.time.length >= 2
        ? bootstrapRmstDiff(sortSurvival(p.time, p.event), ctlSurv, horizon, {
            resamples: opts.bootstrapResamples ?? 1000,
            seed: (opts.seed ?? 1) + idx,
          })
        : null;
    const need = planned.get(p.arm.name) ?? 0;
    const mastered = p.event.reduce((x, y) => x + y, 0);
    let verdict: string;
    if (isControl) verdict = "control";
    else if (p.arm.share <= 0) verdict = "no planned traffic (share 0)";
    else if (accS.n < need || ctlAcc.n < controlNeed)
      verdict = `not yet conclusive: ${accS.n} of ${need} planned students (control ${ctlAcc.n} of ${controlNeed})`;
    else if (accVs === null || !Number.isFinite(accVs.lo)) verdict = "cannot compare (no variance)";
    else if (accVs.lo > 0)
      verdict = `accuracy higher than control: ${pts(accVs.diff)} [${pts(accVs.lo)}, ${pts(accVs.hi)}]`;
    else if (accVs.hi < 0)
      verdict = `accuracy lower than control: ${pts(accVs.diff)} [${pts(accVs.lo)}, ${pts(accVs.hi)}]`;
    else
      verdict = `no significant accuracy difference at the planned size (${pts(accVs.diff)} [${pts(accVs.lo)}, ${pts(accVs.hi)}])`;
    return {
      arm: p.arm.name,
      isControl,
      plannedShare: p.arm.share,
      exposed: p.rows.length,
      accuracy: {
        students: accS.n,
        noQuiz: p.noQuiz,
        pending: p.pending,
        mean: accS.mean,
        sd: Math.sqrt(accS.variance),
      },
      accuracyVsControl: accVs,
      mastery: {
        students: p.time.length,
        mastered,
        censored: p.time.length - mastered,
        medianDays: kmMedian(p.time, p.event),
        rmstDays: p.time.length ? restrictedMean(p.time, p.event, horizon) : Number.NaN,
      },
      masteryVsControl: masteryVs,
      plannedStudents: need,
      verdict,
    };
  });

  const active = e.arms.filter((a) => a.share > 0);
  const observed = active.map((a) => byArm.get(a.name)!.length);
  const total = observed.reduce((x, y) => x + y, 0);
  const gof = chiSquareGoodnessOfFit(
    observed,
    active.map((a) => a.share),
  );
  const srmFlagged = Number.isFinite(gof.p) && gof.p < c.srmAlpha;
  const conclusive = arms.every(
    (a) => a.isControl || a.plannedShare <= 0 || !a.verdict.startsWith("not yet"),
  );
  const summary = srmFlagged
    ? `SAMPLE RATIO MISMATCH (p = ${gof.p.toExponential(2)} < ${c.srmAlpha}): assignment or logging is broken; do not trust the comparison`
    : conclusive
      ? arms
          .filter((a) => !a.isControl)
          .map((a) => `${a.arm}: ${a.verdict}`)
          .join("; ")
      : "not yet conclusive: keep the experiment running until every arm reaches its planned sample size";
  return {
    experiment: {
      id: e.id,
      name: e.name,
      status: e.status,
      startAt: e.startAt,
      endAt: e.endAt,
      control: e.control,
    },
    asOf: new Date(asOfMs).toISOString(),
    config: c,
    arms,
    srm: { ...gof, flagged: srmFlagged, observed, expected: active.map((a) => total * a.share) },
    conclusive,
    summary,
    methods: [
      "Unit: the student, in the arm of their first exposure.",
      `Next-week quiz accuracy: correct / attempts of quiz_attempt events in the 7 days after first exposure; students whose week has not ended are pending, students without attempts are excluded. Difference vs control: Welch's t interval (95%, Welch–Satterthwaite df).`,
      `Time to mastery: days from first exposure to the first student_mastery_history score >= ${c.masteryThreshold} that was below it before (or the topic's first score); students without a crossing by ${new Date(asOfMs).toISOString()} are censored. Per arm: Kaplan–Meier median and restricted mean time to mastery over ${horizon} days (RMST, lower = faster); difference vs control: percentile bootstrap (95%, ${opts.bootstrapResamples ?? 1000} resamples of students within arm, seeded).`,
      `Sample-ratio mismatch: Pearson chi-square goodness of fit of exposed students per arm vs the planned shares (arms with share > 0); flagged when p < ${c.srmAlpha}.`,
      `Planned sample size (no peeking): students with a complete week per arm for a ${pts(c.mde)} difference in accuracy, alpha ${c.alpha} two-sided, power ${c.power}, SD sqrt(b(1-b)) with baseline b = ${pct(c.baselineAccuracy)} (the largest SD a [0,1] outcome with that mean can have, so the plan is conservative): n_control = (z_{1-a/2} + z_{power})^2 sd^2 (1 + 1/r) / mde^2, r = share ratio. Until every arm reaches it the report says "not yet conclusive". No correction for several treatment arms.`,
    ],
  };
}

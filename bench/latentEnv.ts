/**
 * The validity bench's LATENT_* options, read once and shared by the generated settings (trainServed's
 * `latentFit`) and the real-log harness (bench/realLogCuts.ts `latentFit`), so every option set is measured on
 * both (round 19). Each option names the `mastery train served` flag it stands for (printed with the runs).
 */
import {
  LATENT_AS_OF_HALF_LIVES,
  LATENT_CONSOLIDATIONS,
  LATENT_GLOBAL_FITS,
  LATENT_TOPIC_FITS,
  type LatentFitOptions,
  STUDENT_LEARNING_MODES,
  STUDENT_WIDENINGS,
  type StudentWidening,
} from "../models/latentFilter.ts";
import { STUDENT_INTERVAL_MODES, type StudentIntervalMode } from "../models/studentInterval.ts";
import { STUDENT_SCALE_MODES, type StudentScaleMode } from "../models/studentScale.ts";

/** The filter options named by the environment, and the `mastery train served` flags they match. */
export interface LatentEnv {
  fit: LatentFitOptions;
  /** LATENT_STUDENT_SCALE (round 19): the student part's rein-in, applied after the fit; absent = the default. */
  studentScale?: StudentScaleMode;
  /** LATENT_STUDENT_INTERVAL (round 21): the interval's check on the model with its student part; absent = the default. */
  studentInterval?: StudentIntervalMode;
  /** LATENT_STUDENT_WIDENING (fold27): how scoring widens an interval by the offset's sd; absent = the default. */
  studentWidening?: StudentWidening;
  /** The matching `mastery train served` flags, in the order read (empty: the product's defaults). */
  flags: string[];
}

type Env = Readonly<Record<string, string | undefined>>;

const set = (env: Env, name: string): string | undefined => {
  const v = env[name];
  return v === undefined || v === "" ? undefined : v;
};

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[]): T | undefined {
  const v = set(env, name);
  if (v === undefined) return undefined;
  const hit = allowed.find((a) => a === v);
  if (hit === undefined)
    throw new Error(`${name} must be one of ${allowed.join(", ")} (got ${v}); unset it for the default`);
  return hit;
}

function numberIn(
  env: Env,
  name: string,
  lo: number,
  hi: number,
  auto: boolean,
): number | "auto" | undefined {
  const v = set(env, name);
  if (v === undefined) return undefined;
  if (auto && v === "auto") return "auto";
  const n = Number(v);
  if (!(v.trim() !== "" && n >= lo && n <= hi))
    throw new Error(
      `${name} must be ${auto ? "auto or " : ""}a number in [${lo}, ${hi}] (got ${v}); unset it for the default`,
    );
  return n;
}

/**
 * LATENT_STUDENT=0, LATENT_EMISSION, LATENT_FORGETTING, LATENT_THRESHOLD_SD, LATENT_STUDENT_LEARNING,
 * LATENT_FORGET_SPREAD, LATENT_AS_OF, LATENT_AS_OF_HALF_LIFE (round 28), LATENT_CONSOLIDATION (round 29), LATENT_GLOBAL_FIT (round 30), LATENT_INTERVAL, LATENT_CONCENTRATION, LATENT_STUDENT_SCALE, LATENT_TOPIC_FIT,
 * LATENT_STUDENT_INTERVAL, LATENT_STUDENT_WIDENING: the
 * filter's fit options they name (unset: absent, i.e. the caller's default). Throws on a value outside the
 * option's range, naming the variable.
 */
export function latentEnv(env: Env): LatentEnv {
  const fit: LatentFitOptions = {};
  const flags: string[] = [];
  if (set(env, "LATENT_STUDENT") === "0") {
    fit.studentEffect = false;
    flags.push("--latent-student off");
  }
  const emission = oneOf(env, "LATENT_EMISSION", ["linear", "logistic", "auto"] as const);
  if (emission !== undefined) {
    fit.emission = emission;
    flags.push(`--latent-emission ${emission}`);
  }
  const forgetting = oneOf(env, "LATENT_FORGETTING", ["durable", "floor", "auto"] as const);
  if (forgetting !== undefined) {
    fit.forgetting = forgetting;
    flags.push(`--latent-forgetting ${forgetting}`);
  }
  const thSd = numberIn(env, "LATENT_THRESHOLD_SD", 0, Number.POSITIVE_INFINITY, true);
  if (thSd !== undefined) {
    fit.topicThresholdSd = thSd;
    flags.push(`--latent-threshold-sd ${thSd}`);
  }
  const topicFit = oneOf(env, "LATENT_TOPIC_FIT", LATENT_TOPIC_FITS);
  if (topicFit !== undefined) {
    fit.topicFit = topicFit;
    flags.push(`--latent-topic-fit ${topicFit}`);
  }
  const learning = oneOf(env, "LATENT_STUDENT_LEARNING", STUDENT_LEARNING_MODES);
  if (learning !== undefined) {
    fit.studentLearning = learning;
    flags.push(`--latent-student-learning ${learning}`);
  }
  const spread = numberIn(env, "LATENT_FORGET_SPREAD", 0, 1, true);
  if (spread !== undefined) {
    fit.forgetSpread = spread;
    flags.push(`--latent-forgetting-spread ${spread}`);
  }
  const asOf = oneOf(env, "LATENT_AS_OF", ["decay", "spread"] as const);
  if (asOf !== undefined) {
    fit.asOfForgetting = asOf;
    flags.push(`--latent-as-of-forgetting ${asOf}`);
  }
  const asOfHalfLife = oneOf(env, "LATENT_AS_OF_HALF_LIFE", LATENT_AS_OF_HALF_LIVES);
  if (asOfHalfLife !== undefined) {
    fit.asOfHalfLife = asOfHalfLife;
    flags.push(`--latent-as-of-half-life ${asOfHalfLife}`);
  }
  // A number in (0, 1) is the diagnostic's fixed share (bench only: no CLI flag takes it).
  const fixedShare = Number(env.LATENT_CONSOLIDATION);
  if (
    env.LATENT_CONSOLIDATION !== undefined &&
    env.LATENT_CONSOLIDATION.trim() !== "" &&
    fixedShare > 0 &&
    fixedShare < 1
  ) {
    fit.consolidation = fixedShare;
    flags.push(`(bench only, diagnostic) consolidation fixed at ${fixedShare}`);
  } else {
    const consolidation = oneOf(env, "LATENT_CONSOLIDATION", LATENT_CONSOLIDATIONS);
    if (consolidation !== undefined) {
      fit.consolidation = consolidation;
      flags.push(`--latent-consolidation ${consolidation}`);
    }
  }
  const globalFit = oneOf(env, "LATENT_GLOBAL_FIT", LATENT_GLOBAL_FITS);
  if (globalFit !== undefined) {
    fit.globalFit = globalFit;
    flags.push(`--latent-global-fit ${globalFit}`);
  }
  const interval = oneOf(env, "LATENT_INTERVAL", ["widen-only", "two-sided", "by-evidence"] as const);
  if (interval !== undefined) {
    fit.interval = interval;
    flags.push(`--latent-interval ${interval}`);
  }
  const conc = numberIn(env, "LATENT_CONCENTRATION", Number.MIN_VALUE, Number.POSITIVE_INFINITY, false);
  if (conc !== undefined && conc !== "auto") {
    fit.fixedConcentration = conc;
    flags.push(`(bench only) fixedConcentration ${conc}`);
  }
  const studentScale = oneOf(env, "LATENT_STUDENT_SCALE", STUDENT_SCALE_MODES);
  if (studentScale !== undefined) flags.push(`--latent-student-scale ${studentScale}`);
  const studentInterval = oneOf(env, "LATENT_STUDENT_INTERVAL", STUDENT_INTERVAL_MODES);
  if (studentInterval !== undefined) flags.push(`--latent-student-interval ${studentInterval}`);
  const studentWidening = oneOf(env, "LATENT_STUDENT_WIDENING", STUDENT_WIDENINGS);
  if (studentWidening !== undefined) flags.push(`--latent-student-widening ${studentWidening}`);
  return {
    fit,
    flags,
    ...(studentScale !== undefined ? { studentScale } : {}),
    ...(studentInterval !== undefined ? { studentInterval } : {}),
    ...(studentWidening !== undefined ? { studentWidening } : {}),
  };
}

/**
 * The options that change a real-log epoch fit, as a file-name part ("" for none): the cache of an epoch
 * fitted with other options is never read for these. The student scale (LatentEnv.studentScale) is not a fit
 * option: it is applied to a cached fit after loading (models/studentScale.ts), so the fits share their cache.
 */
export function latentCacheTag(fit: LatentFitOptions): string {
  const parts: string[] = [];
  if (fit.forgetting !== undefined && fit.forgetting !== "floor") parts.push(`fg${fit.forgetting}`);
  if (fit.studentLearning === "auto") parts.push("sl");
  if (fit.studentLearning === "wide") parts.push("slw");
  if (fit.forgetSpread !== undefined && fit.forgetSpread !== 0) parts.push(`sp${fit.forgetSpread}`);
  if (fit.asOfForgetting === "decay" && fit.forgetSpread !== undefined && fit.forgetSpread !== 0)
    parts.push("aod");
  if (fit.interval !== undefined && fit.interval !== "widen-only") parts.push(`iv${fit.interval}`);
  if (fit.fixedConcentration !== undefined) parts.push(`c${fit.fixedConcentration}`);
  if (fit.topicFit === "joint") parts.push("tfj");
  if (fit.asOfHalfLife === "idle-gaps") parts.push("ahi");
  if (fit.consolidation === "fit") parts.push("cons");
  if (typeof fit.consolidation === "number") parts.push(`cons${fit.consolidation}`);
  if (fit.globalFit === "converged") parts.push("gfc");
  if (fit.globalFit === "converged-noise-held") parts.push("gfn");
  if (fit.globalFit === "converged-forgetting-held") parts.push("gff");
  return parts.length === 0 ? "" : `-${parts.join("-")}`;
}

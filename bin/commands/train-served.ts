import type { Command } from "commander";
import {
  LATENT_AS_OF_FORGETTING_DEFAULT,
  LATENT_AS_OF_HALF_LIFE_DEFAULT,
  LATENT_AS_OF_HALF_LIVES,
  LATENT_CONSOLIDATION_DEFAULT,
  LATENT_CONSOLIDATIONS,
  LATENT_FORGET_SPREAD_DEFAULT,
  LATENT_FORGETTING_DEFAULT,
  LATENT_GLOBAL_FIT_DEFAULT,
  LATENT_GLOBAL_FITS,
  LATENT_STUDENT_LEARNING_DEFAULT,
  LATENT_THRESHOLD_SD_DEFAULT,
  LATENT_TOPIC_FIT_DEFAULT,
  LATENT_TOPIC_FITS,
  STUDENT_LEARNING_MODES,
  STUDENT_WIDENING_DEFAULT,
  STUDENT_WIDENINGS,
} from "../../models/latentFilter.ts";
import {
  MASTERY_SCALES,
  type MasteryScale,
  SERVED_FROM,
  type ServedFrom,
} from "../../models/servedMastery.ts";
import { STUDENT_INTERVAL_DEFAULT, STUDENT_INTERVAL_MODES } from "../../models/studentInterval.ts";
import { STUDENT_SCALE_DEFAULT, STUDENT_SCALE_MODES } from "../../models/studentScale.ts";
import {
  ANCHOR_EASES,
  type AnchorEase,
  LATENT_CENTRE_DEFAULT,
  LATENT_CENTRES,
  type LatentCentre,
  SERVED_ANCHOR_DEFAULT,
  SERVED_ANCHOR_EASE_DEFAULT,
  SERVED_ANCHORS,
  SERVED_AS_OF_HALF_LIFE_DEFAULT,
  SERVED_AS_OF_HALF_LIVES,
  SERVED_BALANCE,
  SERVED_FROM_DEFAULT,
  SERVED_LABELS,
  SERVED_SCALE,
  type ServedAnchor,
  type ServedLabelKind,
  trainServed,
} from "../../serving/servedTraining.ts";
import { CliError, commandGroup, defaultDbPath, parseIntOption } from "../options.ts";

interface TrainServedCliOptions {
  db?: string;
  out: string;
  labelDays: string;
  minLabelAttempts: string;
  scale: string;
  label: string;
  balance: string;
  latent: string;
  latentStudent: string;
  latentEmission: string;
  latentInterval: string;
  latentForgetting: string;
  latentThresholdSd: string;
  latentTopicFit: string;
  latentCentre: string;
  latentStudentLearning: string;
  latentForgettingSpread: string;
  latentAsOfForgetting: string;
  latentAsOfHalfLife: string;
  latentConsolidation: string;
  latentGlobalFit: string;
  latentStudentScale: string;
  latentStudentInterval: string;
  latentStudentWidening?: string;
  servedFrom: string;
  anchor: string;
  anchorEase: string;
  servedAsOfHalfLife: string;
}

/** `mastery train served`: fit the one served mastery estimate on a store's history (issue 16). */
export function register(program: Command): void {
  commandGroup(program, "train", "Fit a model and write DIR/model.json")
    .command("served")
    .description(
      "Fit the served mastery estimate on a store's own history: a stack of rule/BKT/Elo scores and evidence " +
        "(attempts per kind, days since last evidence, decayed exposure) as of T0 = latest event - label days, on " +
        "the graded outcomes of each (student, topic) after T0; writes DIR/model.json with 80% residual intervals per evidence band",
    )
    .option(
      "--db <path>",
      "DuckDB store to learn from, read only (default: $MASTERY_DB or .mastery/mastery.duckdb)",
    )
    .requiredOption("--out <dir>", "directory for model.json")
    .option("--label-days <n>", "days of the label window after the training snapshot", "7")
    .option(
      "--min-label-attempts <n>",
      "graded answers (quiz-answer equivalents) a pair needs in the label window to be a label",
      "3",
    )
    .option(
      "--label <kind>",
      `proxy label: ${SERVED_LABELS.join(" | ")} (graded: quiz, practice and assignment outcomes weighted by their information; auto: the one with the lower cross-validated error on held-out quiz accuracy)`,
      "auto",
    )
    .option(
      "--balance <power>",
      "reweight labelled pairs to every scored pair: inverse label probability to this power (0: off)",
      String(SERVED_BALANCE),
    )
    .option(
      "--latent <on|off>",
      "fit the latent-state knowledge filter (models/latentFilter.ts) by maximum likelihood and use its posterior mean as an input; also stores it as score_source 'latent'",
      "on",
    )
    .option(
      "--latent-student <on|off>",
      "with --latent on, a per-student offset of the filter's prior shared across topics (student random effect, its sd chosen by leave-one-topic-out likelihood)",
      "on",
    )
    .option(
      "--latent-emission <linear|logistic|auto>",
      "with --latent on, the filter's answer model: linear (P(correct) = guess + (1 - guess - slip) K; K on the accuracy scale) or logistic (an item threshold per topic, K ability-like, served through the centred-logit anchor fitted on K; opt-in, docs/benchmarks.md Validity round 8) or auto (the default, round 10: the one with the higher held-out likelihood on a time split of the fit sample, the logistic form with the latent's spread held at 4)",
      "auto",
    )
    .option(
      "--latent-forgetting <durable|floor|auto>",
      "with --latent on, the filter's forgetting: floor (all knowledge above one global floor decays with the half-life), durable (the gain above the pair's prior mean decays, a fitted share of it is kept; docs/benchmarks.md Validity round 9) or auto (opt-in: the one with the higher held-out likelihood on the emission choice's time split; docs/benchmarks.md Validity round 12)",
      LATENT_FORGETTING_DEFAULT,
    )
    .option(
      "--latent-threshold-sd <auto|sd>",
      "with --latent on and the logistic emission, the prior sd (K units) of a topic's item threshold around the global one: auto (the default since round 13: the candidate 0 / 0.05 / 0.1 / 0.15 / 0.3 with the highest held-out likelihood of the topic fits on the other half of the students, 0.15 unless another wins by more than 0.0005 ll/obs; docs/benchmarks.md Validity round 13) or a number in [0, 1] (0.15: rounds 6-12; 0: one global threshold)",
      String(LATENT_THRESHOLD_SD_DEFAULT),
    )
    .option(
      "--latent-topic-fit <alternating|joint>",
      "with --latent on and the logistic emission, how each topic's prior mean and item threshold are fitted (round 27; also in the threshold shrinkage's held-out choice): alternating (the default: golden-section searches of one at a time, alternated twice) or joint (opt-in: damped Newton steps in both at once, which reach the penalised likelihood's optimum along the ridge where the answers trade the two off; docs/benchmarks.md Validity round 27)",
      LATENT_TOPIC_FIT_DEFAULT,
    )
    .option(
      "--latent-student-learning <off|auto|wide>",
      "with --latent-student on, whether the student's offset also moves their learning rates: off (the level only, rounds 6-23's default), auto (the default since round 24; round 14: a loading of the learning rates' logits on the offset, 0 / 0.25 / 0.5 / 1, chosen with the offset's sd by leave-one-topic-out likelihood, a loading other than 0 only if it wins by more than 0.0005 ll/obs; docs/benchmarks.md Validity rounds 14 and 24) or wide (round 22: the same choice with 1.5 and 2 offered too)",
      LATENT_STUDENT_LEARNING_DEFAULT,
    )
    .option(
      "--latent-forgetting-spread <auto|share>",
      "with --latent on, the share of forgetting that acts all-or-none on a pair (round 15): auto (the default since round 24: the candidate 0 / 0.25 / 0.5 / 0.75 / 1 whose held-out dispersion ratio on the fit sample's answers is closest to 1; docs/benchmarks.md Validity rounds 15 and 24), 0 (rounds 4-23's default: the gain above the floor decays deterministically, so an idle pair's interval narrows with time) or a number in [0, 1]. Each forgetting step keeps the posterior's mean (scores still move: an answer after a gap weighs kept against lost); from the last event to the scoring time see --latent-as-of-forgetting",
      String(LATENT_FORGET_SPREAD_DEFAULT),
    )
    .option(
      "--latent-as-of-forgetting <decay|spread>",
      "with a forgetting spread, how an estimate is carried from the pair's last event to the scoring time (round 16): decay (the default: the estimate at the last event decays deterministically, as GET /mastery decays a stored row, so an idle pair's interval narrows towards the floor) or spread (round 15: the between-event step, spread included, so an idle pair's interval widens with time; docs/benchmarks.md Validity round 16). No effect without a spread",
      LATENT_AS_OF_FORGETTING_DEFAULT,
    )
    .option(
      "--latent-as-of-half-life <filter|idle-gaps>",
      "with --latent-as-of-forgetting decay, the half-life of the decay from a pair's last event to the scoring time (round 28): filter (the default: the filter's own half-life, fitted with everything else on all gaps between events) or idle-gaps (opt-in: fitted on the fit sample's answers after gaps of a week or more without any event on the pair, each predicted as the as-of step predicts a score; stored in the model and used by GET /mastery's decay too; docs/benchmarks.md Validity round 28)",
      LATENT_AS_OF_HALF_LIFE_DEFAULT,
    )
    .option(
      "--latent-consolidation <off|fit>",
      "whether each event on a pair consolidates a share of its gain, so forgetting decays a well-practised pair towards a higher level than a barely-practised one (round 29): off (the default: every pair forgets towards the one global floor) or fit (opt-in: the consolidation share fitted with the filter's other global parameters by the likelihood of the store's answers after the global fit, kept only past a likelihood-ratio test against the same search without it; stored in the model, so GET /mastery's decay uses the pair's own level too; docs/benchmarks.md Validity round 29). With --latent-forgetting floor (the default) only",
      LATENT_CONSOLIDATION_DEFAULT,
    )
    .option(
      "--latent-global-fit <budget|converged|converged-noise-held|converged-forgetting-held>",
      "how far the filter's global parameters are fitted (round 30): budget (the default: a Nelder-Mead search that stops at its 600 likelihood passes, short of the optimum) or converged (opt-in: the same search, then up to 4 more Nelder-Mead searches from its point and BFGS on central-difference gradients of the likelihood, at most 3,400 more passes; docs/benchmarks.md Validity round 30) or converged-noise-held (opt-in, round 31: the same with the per-event noise held at the first search's estimate) or converged-forgetting-held (opt-in, round 31: the half-life, the floor and the noise held there)",
      LATENT_GLOBAL_FIT_DEFAULT,
    )
    .option(
      "--latent-student-scale <off|moments|mastery>",
      "with --latent-student on, whether the student part's scale is reined in (round 19): mastery (the default since round 24; see below), off (rounds 6-23's default: no rein-in), moments (opt-in: when what the student offsets add to the fit sample's answer predictions spreads more across students than the method-of-moments estimate of the students' true spread of correct answers, every offset is multiplied by one factor < 1 that matches the two; label-free, the students' order kept; docs/benchmarks.md Validity round 19) or mastery (round 20: the same check on the mastery scale, the answers' excess carried to K through the emission's local slope, so students where the emission is flat count in full; docs/benchmarks.md Validity round 24)",
      STUDENT_SCALE_DEFAULT,
    )
    .option(
      "--latent-student-interval <off|refit|bands>",
      "with --latent-student on, how the 80% interval's spread factor is set (round 21): off (the default: the held-out dispersion check of the fit, run from each topic's prior without the student part), refit (opt-in: the same check run again on the model with its student part, after --latent-student-scale, each sequence from the prior at its student's offset taken from their other topics; docs/benchmarks.md Validity round 21) or bands (opt-in, round 23: refit, then per evidence band, 0 / 1-4 / 5-14 / 15+ graded answers, the fit sample's next 8 answers predicted from the posterior after that many: a centre shift on the K scale where their excess is beyond 2 standard errors, and a two-sided factor about that centre). Not with --latent-interval by-evidence; bands not with --latent-centre by-evidence",
      STUDENT_INTERVAL_DEFAULT,
    )
    .option(
      "--latent-student-widening <refold|basis>",
      `with --latent-student on, how each served interval carries the uncertainty of the student's offset (fold27; stored in the model, used when it scores): basis (both from the basis folds the score runs anyway: ~1.6x less CPU in the per-student scoring, the same scores, intervals within ~0.005 of refold's for 95% of pairs; docs/benchmarks.md "The served step's folds, round 2") or refold (rounds 7 to fold26: folds each pair again at off-grid offsets, the offset's sd from a second difference at offset -+ 0.25, the widening from the scores at offset -+ sd). Unset: the scoring default, ${STUDENT_WIDENING_DEFAULT}`,
    )
    .option(
      "--latent-centre <none|by-evidence>",
      "with --latent on and the logistic emission, whether the filter's centre is calibrated by evidence band on the proxy labels (round 17): none (the default) or by-evidence (opt-in: per band of the pair's graded observations, 0 / 1-4 / 5-14 / 15+, the intercept that fits the label window's quiz answers on the emission's logit scale, less the pooled one, shrunk by answers / (answers + 200), added to the score and both interval ends on the K scale; docs/benchmarks.md Validity round 17)",
      LATENT_CENTRE_DEFAULT,
    )
    .option(
      "--latent-interval <two-sided|widen-only|by-evidence>",
      "with --latent on, how the held-out dispersion check sets the 80% interval's spread: widen-only (the default, rounds 5-10: never narrower than the posterior) or two-sided (round 11, opt-in: the method-of-moments factor as measured on held-out halves of the fit sample's answers, narrowing an over-wide posterior as it widens a narrow one; floored at half the posterior's spread; docs/benchmarks.md Validity round 11) or by-evidence (round 14, opt-in: one factor per band of the pair's answers, 0 / 1-4 / 5-14 / 15+, each from the held-out check after that many answers; docs/benchmarks.md Validity round 14)",
      "widen-only",
    )
    .option(
      "--served-from <what>",
      `with --latent on, what the served score is: ${SERVED_FROM.join(" | ")} (latent: the filter's posterior mean and 80% interval on the --scale; stack: the stack's prediction)`,
      SERVED_FROM_DEFAULT,
    )
    .option(
      "--scale <name>",
      `how P(correct) maps to the served mastery score: ${MASTERY_SCALES.join(" | ")} (models/servedMastery.ts)`,
      SERVED_SCALE,
    )
    .option(
      "--anchor <how>",
      `where the logit scales put 0.5: ${SERVED_ANCHORS.join(" | ")} (pair-centred: the scored pairs' mean logit P(correct) at the snapshot, its between-topic sd carried by the intervals; gap-accuracy: the log's typical correctness after a gap, rounds 2-6)`,
      SERVED_ANCHOR_DEFAULT,
    )
    .option(
      "--anchor-ease <what>",
      `with --anchor pair-centred, what the anchor's sd in every interval carries: ${ANCHOR_EASES.join(" | ")} (share: the between-topic sd of the pairs' logit K times the square root of the answers' ease share, rounds 8-25; thresholds: the latent filter's topic thresholds' posterior sd, round 26, opt-in, narrower; docs/benchmarks.md Validity round 26)`,
      SERVED_ANCHOR_EASE_DEFAULT,
    )
    .option(
      "--served-as-of-half-life <from>",
      `with --latent on and --latent-as-of-forgetting decay, the half-life of the as-of decay that carries an estimate from a pair's last event to the scoring time: ${SERVED_AS_OF_HALF_LIVES.join(" | ")} (filter: the filter's own; labels: round 32, opt-in: the multiple 0.5x-4x of the filter's that best predicts the label window's quiz answers of the pairs idle at the snapshot, kept only past a likelihood-ratio test; labels-centred: the same with the label window's common logit shift, its new practice, profiled out; docs/benchmarks.md "Round 32 (valid32, 2026-12-07)")`,
      SERVED_AS_OF_HALF_LIFE_DEFAULT,
    )
    .addHelpText(
      "after",
      `
Example:
  npx mastery train served --db .mastery/demo/mastery.duckdb --out out/served
  npx mastery score served --db .mastery/demo/mastery.duckdb --model out/served

Rounds 4-23's served model (the defaults before round 24, cheaper to fit):
  npx mastery train served --out out/served --latent-student-learning off \
    --latent-forgetting-spread 0 --latent-as-of-forgetting decay --latent-student-scale off
`,
    )
    .action(async (opts: TrainServedCliOptions) => {
      if (!(MASTERY_SCALES as readonly string[]).includes(opts.scale))
        throw new CliError(`--scale must be one of ${MASTERY_SCALES.join(", ")} (got ${opts.scale})`);
      if (!(SERVED_LABELS as readonly string[]).includes(opts.label))
        throw new CliError(`--label must be one of ${SERVED_LABELS.join(", ")} (got ${opts.label})`);
      const balance = Number(opts.balance);
      if (!(balance >= 0 && balance <= 1))
        throw new CliError(`--balance must be a number in [0, 1] (got ${opts.balance})`);
      if (opts.latent !== "on" && opts.latent !== "off")
        throw new CliError(`--latent must be on or off (got ${opts.latent})`);
      if (opts.latentStudent !== "on" && opts.latentStudent !== "off")
        throw new CliError(`--latent-student must be on or off (got ${opts.latentStudent})`);
      if (
        opts.latentEmission !== "linear" &&
        opts.latentEmission !== "logistic" &&
        opts.latentEmission !== "auto"
      )
        throw new CliError(`--latent-emission must be linear, logistic or auto (got ${opts.latentEmission})`);
      if (
        opts.latentForgetting !== "durable" &&
        opts.latentForgetting !== "floor" &&
        opts.latentForgetting !== "auto"
      )
        throw new CliError(
          `--latent-forgetting must be durable, floor or auto (got ${opts.latentForgetting})`,
        );
      const thresholdSd = opts.latentThresholdSd === "auto" ? "auto" : Number(opts.latentThresholdSd);
      if (
        thresholdSd !== "auto" &&
        !(opts.latentThresholdSd.trim() !== "" && thresholdSd >= 0 && thresholdSd <= 1)
      )
        throw new CliError(
          `--latent-threshold-sd must be auto or a number in [0, 1] (got ${opts.latentThresholdSd}); e.g. 0.15`,
        );
      const topicFit = LATENT_TOPIC_FITS.find((m) => m === opts.latentTopicFit);
      if (topicFit === undefined)
        throw new CliError(
          `--latent-topic-fit must be one of ${LATENT_TOPIC_FITS.join(", ")} (got ${opts.latentTopicFit}); e.g. joint`,
        );
      const studentLearning = STUDENT_LEARNING_MODES.find((m) => m === opts.latentStudentLearning);
      if (studentLearning === undefined)
        throw new CliError(
          `--latent-student-learning must be one of ${STUDENT_LEARNING_MODES.join(", ")} (got ${opts.latentStudentLearning}); e.g. auto`,
        );
      const forgetSpread =
        opts.latentForgettingSpread === "auto" ? "auto" : Number(opts.latentForgettingSpread);
      if (
        forgetSpread !== "auto" &&
        !(opts.latentForgettingSpread.trim() !== "" && forgetSpread >= 0 && forgetSpread <= 1)
      )
        throw new CliError(
          `--latent-forgetting-spread must be auto or a number in [0, 1] (got ${opts.latentForgettingSpread}); e.g. auto`,
        );
      const asOfHalfLife = LATENT_AS_OF_HALF_LIVES.find((m) => m === opts.latentAsOfHalfLife);
      if (asOfHalfLife === undefined)
        throw new CliError(
          `--latent-as-of-half-life must be one of ${LATENT_AS_OF_HALF_LIVES.join(", ")} (got ${opts.latentAsOfHalfLife}); e.g. idle-gaps`,
        );
      if (asOfHalfLife === "idle-gaps" && opts.latentAsOfForgetting !== "decay")
        throw new CliError(
          `--latent-as-of-half-life idle-gaps fits the half-life of the decay as-of step: use it with --latent-as-of-forgetting decay (the default), not ${opts.latentAsOfForgetting}`,
        );
      const consolidation = LATENT_CONSOLIDATIONS.find((m) => m === opts.latentConsolidation);
      if (consolidation === undefined)
        throw new CliError(
          `--latent-consolidation must be one of ${LATENT_CONSOLIDATIONS.join(", ")} (got ${opts.latentConsolidation}); e.g. fit`,
        );
      if (consolidation === "fit" && opts.latentForgetting !== "floor")
        throw new CliError(
          `--latent-consolidation fit raises the global floor with practice: use it with --latent-forgetting floor (the default), not ${opts.latentForgetting}`,
        );
      const globalFit = LATENT_GLOBAL_FITS.find((m) => m === opts.latentGlobalFit);
      if (globalFit === undefined)
        throw new CliError(
          `--latent-global-fit must be one of ${LATENT_GLOBAL_FITS.join(", ")} (got ${opts.latentGlobalFit}); e.g. converged`,
        );
      if (opts.latentAsOfForgetting !== "decay" && opts.latentAsOfForgetting !== "spread")
        throw new CliError(
          `--latent-as-of-forgetting must be decay or spread (got ${opts.latentAsOfForgetting}); e.g. decay`,
        );
      const studentScale = STUDENT_SCALE_MODES.find((m) => m === opts.latentStudentScale);
      if (studentScale === undefined)
        throw new CliError(
          `--latent-student-scale must be one of ${STUDENT_SCALE_MODES.join(", ")} (got ${opts.latentStudentScale}); e.g. moments`,
        );
      const studentInterval = STUDENT_INTERVAL_MODES.find((m) => m === opts.latentStudentInterval);
      if (studentInterval === undefined)
        throw new CliError(
          `--latent-student-interval must be one of ${STUDENT_INTERVAL_MODES.join(", ")} (got ${opts.latentStudentInterval}); e.g. refit`,
        );
      if (studentInterval !== "off" && opts.latentInterval === "by-evidence")
        throw new CliError(
          `--latent-student-interval ${studentInterval} sets the interval's factors itself: use it with --latent-interval widen-only or two-sided`,
        );
      if (studentInterval === "bands" && opts.latentCentre === "by-evidence")
        throw new CliError(
          "--latent-student-interval bands sets the centre shift by evidence from held-out answers: drop --latent-centre by-evidence (or use --latent-student-interval refit)",
        );
      if (
        opts.latentInterval !== "two-sided" &&
        opts.latentInterval !== "widen-only" &&
        opts.latentInterval !== "by-evidence"
      )
        throw new CliError(
          `--latent-interval must be two-sided, widen-only or by-evidence (got ${opts.latentInterval})`,
        );
      if (!(LATENT_CENTRES as readonly string[]).includes(opts.latentCentre))
        throw new CliError(
          `--latent-centre must be one of ${LATENT_CENTRES.join(", ")} (got ${opts.latentCentre}); e.g. by-evidence`,
        );
      if (!(SERVED_ANCHORS as readonly string[]).includes(opts.anchor))
        throw new CliError(`--anchor must be one of ${SERVED_ANCHORS.join(", ")} (got ${opts.anchor})`);
      if (!(ANCHOR_EASES as readonly string[]).includes(opts.anchorEase))
        throw new CliError(
          `--anchor-ease must be one of ${ANCHOR_EASES.join(", ")} (got ${opts.anchorEase}); e.g. thresholds`,
        );
      const servedAsOf = SERVED_AS_OF_HALF_LIVES.find((m) => m === opts.servedAsOfHalfLife);
      if (servedAsOf === undefined)
        throw new CliError(
          `--served-as-of-half-life must be one of ${SERVED_AS_OF_HALF_LIVES.join(", ")} (got ${opts.servedAsOfHalfLife}); e.g. labels`,
        );
      if (servedAsOf !== "filter" && asOfHalfLife === "idle-gaps")
        throw new CliError(
          `--served-as-of-half-life ${servedAsOf} and --latent-as-of-half-life idle-gaps both set the as-of half-life: pass only one of them`,
        );
      if (!(SERVED_FROM as readonly string[]).includes(opts.servedFrom))
        throw new CliError(`--served-from must be one of ${SERVED_FROM.join(", ")} (got ${opts.servedFrom})`);
      const studentWidening =
        opts.latentStudentWidening === undefined
          ? undefined
          : STUDENT_WIDENINGS.find((m) => m === opts.latentStudentWidening);
      if (opts.latentStudentWidening !== undefined && studentWidening === undefined)
        throw new CliError(
          `--latent-student-widening must be one of ${STUDENT_WIDENINGS.join(", ")} (got ${opts.latentStudentWidening}); e.g. basis`,
        );
      const res = await trainServed({
        latent: opts.latent === "on",
        servedFrom: opts.servedFrom as ServedFrom,
        anchor: opts.anchor as ServedAnchor,
        anchorEase: opts.anchorEase as AnchorEase,
        asOfHalfLife: servedAsOf,
        latentCentre: opts.latentCentre as LatentCentre,
        latentFit: {
          studentEffect: opts.latentStudent === "on",
          studentLearning,
          emission: opts.latentEmission,
          forgetting: opts.latentForgetting,
          topicThresholdSd: thresholdSd,
          topicFit,
          interval: opts.latentInterval,
          forgetSpread,
          asOfForgetting: opts.latentAsOfForgetting,
          asOfHalfLife,
          consolidation,
          globalFit,
          studentScale,
          studentInterval,
          ...(studentWidening !== undefined ? { studentWidening } : {}),
          onProgress: (ev, ll) => {
            if (ev % 100 < 2)
              process.stderr.write(
                `latent filter fit: ${ev} evaluations, log-likelihood per observation ${ll.toFixed(5)}\n`,
              );
          },
        },
        label: opts.label as ServedLabelKind,
        balance,
        scale: opts.scale as MasteryScale,
        dbPath: opts.db ?? defaultDbPath(),
        out: opts.out,
        labelDays: parseIntOption(opts.labelDays, "--label-days", 1),
        minLabelAttempts: parseIntOption(opts.minLabelAttempts, "--min-label-attempts", 1),
      });
      const guard = res.latentFit?.model.json.fit;
      // The latent filter's small-data guard (models/latentFilter.ts): say when it shaped the fit.
      if (guard?.fallback !== undefined) process.stderr.write(`latent filter fit: ${guard.fallback}\n`);
      else if (guard?.smallData !== undefined)
        process.stderr.write(
          `latent filter fit: ${guard.observations} graded observations (< ${guard.smallData.minObservations}): global parameters shrunk toward the defaults (prior sd ${guard.smallData.priorSd.toFixed(3)})\n`,
        );
      else if (guard?.implausible !== undefined)
        process.stderr.write(
          `latent filter fit: kept, but outside the plausible bounds: ${guard.implausible.join("; ")}\n`,
        );
      const j = res.model.toJSON();
      process.stdout.write(
        `${JSON.stringify({
          modelPath: res.modelPath,
          snapshot: res.snapshot.toISOString(),
          labelEnd: res.labelEnd.toISOString(),
          labelledPairs: res.labelledPairs,
          label: res.label,
          labelCv: res.labelCv,
          kindWeights: res.kindWeights,
          weights: Object.fromEntries(j.inputs.map((n, i) => [n, j.weights[i]])),
          intercept: j.intercept,
          scale: j.scale,
          anchor: j.anchor ?? null,
          latent:
            res.latentFit === null
              ? null
              : {
                  params: res.latentFit.model.json.params,
                  fit: res.latentFit.model.json.fit,
                  intervalScale: res.latentFit.model.json.intervalScale ?? 1,
                  studentPriorSd: res.latentFit.model.json.studentPriorSd ?? 0,
                  studentOffsetScale: res.latentFit.model.json.studentOffsetScale ?? 1,
                  seconds: res.latentFit.seconds,
                },
          halfLifeDays: {
            global: res.decay.global.halfLifeDays,
            gaps: res.decay.global.n,
            topics: Object.keys(res.decay.topics).length,
          },
        })}\n`,
      );
    });
}

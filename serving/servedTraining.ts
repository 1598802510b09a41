import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFeatures } from "../features/windows.ts";
import { type DecayFit, fitDecay } from "../models/servedDecay.ts";
import {
  type MasteryScale,
  type PairEvidence,
  ServedMastery,
  type TopicCalibration,
} from "../models/servedMastery.ts";
import { DuckStore, sqlString } from "../storage/duckdb.ts";
import { resolveModels, scoreBktElo } from "./learnerState.ts";
import { scoreRules } from "./ruleScoring.ts";
import { loadDecayTransitions, loadPairEvidence } from "./servedInputs.ts";

const DAY_MS = 86_400_000;

/** The default mastery scale of the served estimate (docs/benchmarks.md "Validity" compares the three). */
export const SERVED_SCALE: MasteryScale = "centred-logit";

export interface TrainServedOptions {
  /** The store to learn from (read only): its raw_events and topics. */
  dbPath: string;
  /** End of the label window (default: the latest event + 1 s). */
  labelEnd?: Date;
  /** Days of the label window; the training snapshot is as of labelEnd - labelDays. Default 7. */
  labelDays?: number;
  /** Pairs need at least this many quiz attempts in the label window. Default 3. */
  minLabelAttempts?: number;
  /** How P(correct) maps to the served score (models/servedMastery.ts MASTERY_SCALES). Default SERVED_SCALE. */
  scale?: MasteryScale;
  /** Directory to write model.json into (optional). */
  out?: string;
}

export interface TrainServedResult {
  model: ServedMastery;
  snapshot: Date;
  labelEnd: Date;
  labelledPairs: number;
  modelPath: string | null;
  /** The forgetting fitted on the history before the snapshot (models/servedDecay.ts). */
  decay: DecayFit;
}

export class ServedTrainError extends Error {
  readonly code = "SERVED_TRAIN";
  constructor(message: string) {
    super(message);
    this.name = "ServedTrainError";
  }
}

/**
 * Fits the served mastery estimate (models/servedMastery.ts) on the store's own history, point in time:
 * the events before the snapshot T0 = labelEnd - labelDays are copied into a scratch store and run through
 * the same steps the pipeline runs (features -> rule scores -> BKT/Elo replay, models fitted on those events
 * only); the label of a (student, topic) is its quiz accuracy in [T0, labelEnd) (the mission's proxy label),
 * weighted by its attempt count. Nothing at or after T0 reaches the inputs.
 */
export async function trainServed(opts: TrainServedOptions): Promise<TrainServedResult> {
  const labelDays = opts.labelDays ?? 7;
  const minAttempts = opts.minLabelAttempts ?? 3;
  const work = mkdtempSync(join(tmpdir(), "served-train-"));
  const scratch = await DuckStore.open(join(work, "snapshot.duckdb"));
  try {
    await scratch.run(`ATTACH ${sqlString(opts.dbPath)} AS live (READ_ONLY)`);
    let labelEnd = opts.labelEnd;
    if (labelEnd === undefined) {
      const r = await scratch.one<{ t: Date | null }>("SELECT max(ts) AS t FROM live.raw_events");
      if (!r?.t) throw new ServedTrainError(`${opts.dbPath} has no raw_events: ingest events first`);
      labelEnd = new Date(r.t.getTime() + 1000);
    }
    const snapshot = new Date(labelEnd.getTime() - labelDays * DAY_MS);
    await scratch.run("INSERT INTO topics SELECT * FROM live.topics");
    await scratch.run("INSERT INTO raw_events SELECT * FROM live.raw_events WHERE ts < $1::TIMESTAMP", [
      snapshot.toISOString(),
    ]);
    const labels = await scratch.all<{ student_key: string; topic_id: string; n: number; acc: number }>(
      `SELECT student_key, topic_id, count(*)::INTEGER AS n, avg(CASE WHEN is_correct THEN 1.0 ELSE 0.0 END) AS acc
       FROM (SELECT DISTINCT event_id, student_key, topic_id, is_correct FROM live.raw_events
             WHERE type = 'quiz_attempt' AND ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP)
       GROUP BY ALL HAVING count(*) >= $3`,
      [snapshot.toISOString(), labelEnd.toISOString(), minAttempts],
    );
    await scratch.run("DETACH live");
    const before = await scratch.one<{ n: number }>("SELECT count(*)::INTEGER AS n FROM raw_events");
    if ((before?.n ?? 0) === 0)
      throw new ServedTrainError(
        `no events before the training snapshot ${snapshot.toISOString()}: the store needs more than ${labelDays} days of history (or pass a shorter --label-days)`,
      );
    await buildFeatures(scratch, snapshot, { truncate: true });
    await scoreRules(scratch, { asOf: snapshot });
    const models = await resolveModels(scratch, {});
    await scoreBktElo(scratch, models);
    const evidence = await loadPairEvidence(scratch, snapshot);
    // Calibration per topic: guess/slip of the bounded BKT fit on the same history (mastery scale), the
    // half-life and base of the decay fit on the same history (forgetting).
    const decay = fitDecay(await loadDecayTransitions(scratch, snapshot));
    const topicIds = (await scratch.all<{ topic_id: string }>("SELECT topic_id FROM topics")).map(
      (r) => r.topic_id,
    );
    const bktOf = (t: string) => models.bkt?.paramsFor(t) ?? undefined;
    const meanOf = (xs: number[], d: number) =>
      xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : d;
    const fitted = topicIds.map(bktOf).filter((p) => p !== undefined);
    const global: TopicCalibration = {
      guess: meanOf(
        fitted.map((p) => p.guess),
        0,
      ),
      slip: meanOf(
        fitted.map((p) => p.slip),
        0,
      ),
      halfLifeDays: decay.global.halfLifeDays,
      base: decay.global.base,
    };
    const calibration: Record<string, TopicCalibration> = {};
    for (const t of topicIds) {
      const p = bktOf(t);
      const d = decay.topics[t];
      calibration[t] = {
        guess: p?.guess ?? global.guess,
        slip: p?.slip ?? global.slip,
        halfLifeDays: d?.halfLifeDays ?? global.halfLifeDays,
        base: d?.base ?? global.base,
      };
    }
    const xs: PairEvidence[] = [];
    const ys: number[] = [];
    const ws: number[] = [];
    for (const l of labels) {
      const e = evidence.get(`${l.student_key}|${l.topic_id}`);
      if (e === undefined) continue;
      xs.push(e);
      ys.push(Number(l.acc));
      ws.push(Number(l.n));
    }
    if (xs.length < 50)
      throw new ServedTrainError(
        `only ${xs.length} (student, topic) pairs have >= ${minAttempts} quiz attempts in the label window ${snapshot.toISOString()} .. ${labelEnd.toISOString()} and history before it; need 50: use a longer --label-days or a lower --min-label-attempts`,
      );
    const model = ServedMastery.fit(xs, ys, {
      weights: ws,
      labelAttempts: ws,
      topics: calibration,
      global,
      scale: opts.scale ?? SERVED_SCALE,
    });
    let modelPath: string | null = null;
    if (opts.out !== undefined) {
      mkdirSync(opts.out, { recursive: true });
      modelPath = join(opts.out, "model.json");
      writeFileSync(
        modelPath,
        `${JSON.stringify(
          {
            ...model.toJSON(),
            snapshot: snapshot.toISOString(),
            labelEnd: labelEnd.toISOString(),
            labelDays,
            minLabelAttempts: minAttempts,
          },
          null,
          2,
        )}\n`,
      );
    }
    return { model, snapshot, labelEnd, labelledPairs: xs.length, modelPath, decay };
  } finally {
    scratch.close();
    rmSync(work, { recursive: true, force: true });
  }
}

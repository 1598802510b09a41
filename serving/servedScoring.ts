import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Explanation, explain } from "../models/explanation.ts";
import { type ServedEstimate, ServedMastery, type ServedMasteryJson } from "../models/servedMastery.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { DuckDBTimestampValue } from "../storage/duckdbApi.ts";
import { loadPairEvidence } from "./servedInputs.ts";

/** The score_source of the served estimate in student_mastery (first in the serving order). */
export const SERVED_SOURCE = "served";

/**
 * The explanation stored with a served score: the usual base + top factors + rest (= score), plus the 80%
 * interval and the evidence behind it (issue 16, item 3). GET /mastery lifts `interval` and `evidence` out.
 */
export interface ServedExplanation extends Explanation {
  interval: { lo: number; hi: number; level: 0.8 };
  evidence: { kind: ServedEstimate["evidence"]; attempts: number; daysSinceLast: number | null };
}

export function servedExplanation(est: ServedEstimate): ServedExplanation {
  const e = explain(
    est.base,
    est.contributions.map((c) => ({ name: c.name, value: c.value, contribution: c.contribution })),
    est.score,
  );
  return {
    ...e,
    rest: e.rest + est.rest,
    interval: { lo: est.lo, hi: est.hi, level: 0.8 },
    evidence: { kind: est.evidence, attempts: est.attempts, daysSinceLast: est.daysSinceLast },
  };
}

export function loadServedModel(dir: string): { model: ServedMastery; version: string } {
  const path = join(dir, "model.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(
      `cannot read the served model ${path} (${(err as Error).message}): train one with \`mastery train served --db <store> --out ${dir}\``,
    );
  }
  const json = JSON.parse(text) as ServedMasteryJson;
  const version = `served-${createHash("sha256").update(text).digest("hex").slice(0, 12)}`;
  return { model: ServedMastery.fromJSON(json), version };
}

export interface ScoreServedResult {
  scored: number;
  asOf: string;
  evidence: Record<string, number>;
  modelVersion: string;
}

/**
 * Scores every (student, topic) of the store with the served estimate as of `asOf` (days since the last
 * evidence are measured at `asOf`, so the same pair scored later reflects the time passed), and writes
 * them to student_mastery (+ history) as score_source 'served'.
 */
export async function scoreServed(
  store: DuckStore,
  model: ServedMastery,
  modelVersion: string,
  opts: { asOf: Date; now?: Date },
): Promise<ScoreServedResult> {
  const now = opts.now ?? new Date();
  const evidence = await loadPairEvidence(store, opts.asOf);
  await store.run(
    `CREATE OR REPLACE TEMP TABLE served_score (student_key VARCHAR, topic_id VARCHAR, mastery_score DOUBLE, explanation VARCHAR)`,
  );
  const app = await store.conn.createAppender("served_score");
  const kinds: Record<string, number> = {};
  for (const [key, e] of evidence) {
    const sep = key.indexOf("|");
    const est = model.predict(e);
    kinds[est.evidence] = (kinds[est.evidence] ?? 0) + 1;
    app.appendVarchar(key.slice(0, sep));
    app.appendVarchar(key.slice(sep + 1));
    app.appendDouble(est.score);
    app.appendVarchar(JSON.stringify(servedExplanation(est)));
    app.endRow();
  }
  app.closeSync();
  const ts = (d: Date) => new DuckDBTimestampValue(BigInt(d.getTime()) * 1000n);
  await store.transaction(async () => {
    await store.run(
      `INSERT OR REPLACE INTO student_mastery
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
       SELECT student_key, topic_id, mastery_score, $1, $2, $3, explanation, $4 FROM served_score`,
      [SERVED_SOURCE, modelVersion, ts(opts.asOf), ts(now)],
    );
    await store.run(
      `INSERT INTO student_mastery_history
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
       SELECT student_key, topic_id, mastery_score, $1, $2, $3, explanation, $4 FROM served_score`,
      [SERVED_SOURCE, modelVersion, ts(opts.asOf), ts(now)],
    );
  });
  await store.run("DROP TABLE IF EXISTS served_score");
  return { scored: evidence.size, asOf: opts.asOf.toISOString(), evidence: kinds, modelVersion };
}

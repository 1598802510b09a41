import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { LatentFilter } from "../models/latentFilter.ts";
import { ServedMastery, type ServedMasteryJson } from "../models/servedMastery.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { DuckDBTimestampValue } from "../storage/duckdbApi.ts";
import type { BatchScore } from "../storage/masteryStore.ts";
import { deltaTable, replaceBaseRows } from "../storage/servingTables.ts";
import { attachLatent, LATENT_SOURCE, latentDecay, latentExplanation } from "./latentScoring.ts";
import { loadPairEvidence } from "./servedInputs.ts";
import { SERVED_SOURCE, servedEstimate, servedExplanation } from "./servedRows.ts";

export { SERVED_SOURCE, type ServedExplanation, servedEstimate, servedExplanation } from "./servedRows.ts";

export class ServedModelError extends Error {
  readonly code = "SERVED_MODEL";
  constructor(message: string) {
    super(message);
    this.name = "ServedModelError";
  }
}

export function loadServedModel(dir: string): { model: ServedMastery; version: string } {
  const path = join(dir, "model.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ServedModelError(
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
  const latent = model.json.latent === undefined ? null : LatentFilter.fromJSON(model.json.latent);
  const latentEst = latent === null ? null : await attachLatent(store, evidence, latent, opts.asOf);
  await store.run(
    `CREATE OR REPLACE TEMP TABLE served_score (student_key VARCHAR, topic_id VARCHAR, mastery_score DOUBLE, explanation VARCHAR, score_source VARCHAR)`,
  );
  const kinds: Record<string, number> = {};
  await store.appendRows("served_score", (app) => {
    for (const [key, e] of evidence) {
      const sep = key.indexOf("|");
      const est = servedEstimate(model, e, latentEst?.get(key));
      kinds[est.evidence] = (kinds[est.evidence] ?? 0) + 1;
      app.appendVarchar(key.slice(0, sep));
      app.appendVarchar(key.slice(sep + 1));
      app.appendDouble(est.score);
      app.appendVarchar(JSON.stringify(servedExplanation(est)));
      app.appendVarchar(SERVED_SOURCE);
      app.endRow();
    }
    // The filter's own estimate is stored next to it (score_source 'latent', with its interval and factors).
    for (const [key, est] of latentEst ?? []) {
      const sep = key.indexOf("|");
      app.appendVarchar(key.slice(0, sep));
      app.appendVarchar(key.slice(sep + 1));
      app.appendDouble(est.score);
      app.appendVarchar(
        JSON.stringify(
          latentExplanation(est, latent === null ? undefined : latentDecay(latent.json.params, est)),
        ),
      );
      app.appendVarchar(LATENT_SOURCE);
      app.endRow();
    }
  });
  await writeServedScores(store, modelVersion, opts.asOf, now);
  return { scored: evidence.size, asOf: opts.asOf.toISOString(), evidence: kinds, modelVersion };
}

/**
 * Writes temp.served_score (student_key, topic_id, mastery_score, explanation, score_source: the 'served' and
 * 'latent' rows of a run) to student_mastery and its history as of `asOf`, in one transaction, and drops it.
 * Shared by scoreServed and the daily batch's served step (serving/servedBatch.ts). A run over every pair
 * ("full") writes the serving table's base anew without the old served and latent rows (storage/servingTables.ts
 * replaceBaseRows: replacing a third of the base's keys in place through its primary key cost more, as for the
 * rule step) and drops their delta rows (the stream's, all older than this run's); a run over some students
 * ("incremental") appends to the delta, as the other steps' daily runs do.
 */
export async function writeServedScores(
  store: DuckStore,
  modelVersion: string,
  asOf: Date,
  now: Date,
  mode: "full" | "incremental" = "full",
): Promise<void> {
  const ts = (d: Date) => new DuckDBTimestampValue(BigInt(d.getTime()) * 1000n);
  const params = [modelVersion, ts(asOf), ts(now)];
  const sources = `score_source IN ('${SERVED_SOURCE}', '${LATENT_SOURCE}')`;
  const rows = `SELECT student_key, topic_id, mastery_score, score_source, $1 AS model_version, $2 AS as_of,
                       explanation, $3 AS last_updated FROM served_score`;
  await store.transaction(async () => {
    if (mode === "incremental")
      await store.run(
        `INSERT INTO ${deltaTable("student_mastery")}
           (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
         ${rows}`,
        params,
      );
    else {
      await store.run(`DELETE FROM ${deltaTable("student_mastery")} WHERE ${sources}`);
      await replaceBaseRows(store, "student_mastery", `NOT (b.${sources})`, rows, params);
    }
    await store.run(
      `INSERT INTO student_mastery_history
         (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, recorded_at)
       SELECT student_key, topic_id, mastery_score, score_source, $1, $2, explanation, $3 FROM served_score`,
      params,
    );
  });
  await store.run("DROP TABLE IF EXISTS served_score");
}

/** Where the served scores are published besides the DuckDB file (PgMasteryStore: `mastery serve` on PostgreSQL). */
export interface BatchScoreSink {
  writeScores(rows: readonly BatchScore[], nowUs: number): Promise<number>;
}

/**
 * Copies the served (and 'latent') scores of the run as of `asOf` from the DuckDB file to another mastery
 * store (PostgreSQL), explanations (interval, P(correct), evidence, decay) as stored, so a server reading
 * PostgreSQL serves them as the embedded one does. Returns the rows written.
 */
export async function publishServedScores(
  store: DuckStore,
  sink: BatchScoreSink,
  asOf: Date,
  now: Date = new Date(),
): Promise<number> {
  const rows = await store.all<{
    student_key: string;
    topic_id: string;
    score_source: string;
    mastery_score: number;
    model_version: string;
    explanation: string;
  }>(
    `SELECT student_key, topic_id, score_source, mastery_score, model_version, explanation FROM student_mastery
     WHERE score_source IN ($1, $2) AND as_of = $3::TIMESTAMP ORDER BY student_key, topic_id, score_source`,
    [SERVED_SOURCE, LATENT_SOURCE, asOf.toISOString()],
  );
  const asOfUs = asOf.getTime() * 1000;
  return sink.writeScores(
    rows.map((r) => ({
      studentKey: r.student_key,
      topicId: r.topic_id,
      source: r.score_source,
      score: Number(r.mastery_score),
      modelVersion: r.model_version,
      asOfUs,
      explanation: r.explanation,
    })),
    now.getTime() * 1000,
  );
}

/** One row of the analysts' export (`mastery export scores`): pseudonymous keys only. */
export interface ServedExportRow {
  student_key: string;
  topic_id: string;
  score: number;
  lo: number;
  hi: number;
  /** P(correct on an average next item). */
  p_correct: number;
  /**
   * Contribution of each stored source (rule/BKT/Elo) to the score, as JSON; for a score served from the
   * latent filter, each of its factors (models/latentFilter.ts LATENT_FACTORS).
   */
  source_mix: string;
  evidence: string;
  attempts: number;
  days_since_last: number | null;
  as_of: string;
}

export const SERVED_EXPORT_COLUMNS = [
  "student_key",
  "topic_id",
  "score",
  "lo",
  "hi",
  "p_correct",
  "source_mix",
  "evidence",
  "attempts",
  "days_since_last",
  "as_of",
] as const;

/**
 * The served estimate of every (student, topic) as of `asOf`, without writing anything. Evidence (attempts,
 * days since the last event) counts only events before `asOf`; the stored rule/BKT/Elo inputs are the latest
 * stored scores.
 */
export async function servedExportRows(
  store: DuckStore,
  model: ServedMastery,
  asOf: Date,
): Promise<ServedExportRow[]> {
  const out: ServedExportRow[] = [];
  const evidence = await loadPairEvidence(store, asOf);
  const latentEst =
    model.json.latent === undefined
      ? null
      : await attachLatent(store, evidence, LatentFilter.fromJSON(model.json.latent), asOf);
  for (const [key, e] of evidence) {
    const sep = key.indexOf("|");
    const est = servedEstimate(model, e, latentEst?.get(key));
    const mix: Record<string, number> = {};
    // The stack: the stored sources' contributions; the latent filter: its factors (what moved the posterior).
    const fromLatent = model.json.servedFrom === "latent" && model.json.latent !== undefined;
    for (const c of est.contributions)
      if (fromLatent || c.name === "rule_score" || c.name === "bkt_p_learned" || c.name === "elo_score")
        mix[c.name] = c.contribution;
    out.push({
      student_key: key.slice(0, sep),
      topic_id: key.slice(sep + 1),
      score: est.score,
      lo: est.lo,
      hi: est.hi,
      p_correct: est.pCorrect,
      source_mix: JSON.stringify(mix),
      evidence: est.evidence,
      attempts: est.attempts,
      days_since_last: est.daysSinceLast,
      as_of: asOf.toISOString(),
    });
  }
  out.sort((a, b) => a.student_key.localeCompare(b.student_key) || a.topic_id.localeCompare(b.topic_id));
  return out;
}

/** RFC 4180 CSV of the export rows (fields with a comma, quote or newline are quoted). */
export function servedExportCsv(rows: readonly ServedExportRow[]): string {
  const cell = (v: unknown): string => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const lines = [SERVED_EXPORT_COLUMNS.join(",")];
  for (const r of rows) lines.push(SERVED_EXPORT_COLUMNS.map((c) => cell(r[c])).join(","));
  return `${lines.join("\n")}\n`;
}

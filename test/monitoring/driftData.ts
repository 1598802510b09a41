/**
 * Generated feature rows for drift tests: independent (student, topic) rows with a topic, school
 * and grade, and four features. A shift multiplies/offsets one feature inside one segment only.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { Xoshiro128 } from "../../models/prng.ts";
import { DEFAULT_DRIFT_CONFIG, type DriftConfig } from "../../monitoring/config.ts";
import type { FeatureFrame } from "../../monitoring/driftMonitor.ts";
import type { DuckStore } from "../../storage/duckdb.ts";
import { ensureFeatureSnapshot } from "../../storage/featureRows.ts";

export const TEST_FEATURES = [
  "accuracy_7d",
  "avg_time_per_question_7d",
  "attempts_7d",
  "hint_usage_rate_30d",
] as const;
export const TOPICS = ["t1", "t2", "t3", "t4", "t5"];
export const SCHOOLS = ["s1", "s2", "s3", "s4"];

export interface GenRow {
  student: string;
  topic: string;
  school: string;
  grade: number;
  accuracy_7d: number | null;
  avg_time_per_question_7d: number;
  attempts_7d: number;
  hint_usage_rate_30d: number;
}

export interface Shift {
  feature: "accuracy_7d" | "avg_time_per_question_7d";
  /** Only rows of this topic / school are shifted. */
  topic?: string;
  school?: string;
  /** Added to accuracy (clamped to [0,1]); time is multiplied by (1 + delta). */
  delta: number;
}

export function generateRows(seed: number, n: number, prefix: string, shift?: Shift): GenRow[] {
  const g = new Xoshiro128(seed);
  const rows: GenRow[] = [];
  for (let i = 0; i < n; i++) {
    const topic = TOPICS[Math.floor(g.next() * TOPICS.length)]!;
    const school = SCHOOLS[Math.floor(g.next() * SCHOOLS.length)]!;
    const grade = g.next() < 0.5 ? 5 : 6;
    let acc: number | null = Math.min(1, Math.max(0, 0.65 + 0.15 * g.normal()));
    let time = Math.exp(3.4 + 0.4 * g.normal());
    const attempts = Math.floor(Math.exp(1.5 + 0.5 * g.normal()));
    const hints = Math.max(0, 0.3 + 0.1 * g.normal());
    if (g.next() < 0.1) acc = null;
    const hit =
      shift !== undefined &&
      (shift.topic === undefined || shift.topic === topic) &&
      (shift.school === undefined || shift.school === school);
    if (hit && shift.feature === "accuracy_7d" && acc !== null)
      acc = Math.min(1, Math.max(0, acc + shift.delta));
    if (hit && shift.feature === "avg_time_per_question_7d") time *= 1 + shift.delta;
    rows.push({
      student: `${prefix}${i}`,
      topic,
      school,
      grade,
      accuracy_7d: acc,
      avg_time_per_question_7d: time,
      attempts_7d: attempts,
      hint_usage_rate_30d: hints,
    });
  }
  return rows;
}

/** The rows as a FeatureFrame (what loadWindow would read), for the pure path. */
export function frameOf(rows: readonly GenRow[]): FeatureFrame {
  const n = rows.length;
  const columns = new Map<string, Float64Array>();
  for (const f of TEST_FEATURES)
    columns.set(
      f,
      Float64Array.from(rows, (r) => r[f] ?? Number.NaN),
    );
  return {
    n,
    columns,
    topic: rows.map((r) => r.topic),
    school: rows.map((r) => r.school),
    grade: rows.map((r) => String(r.grade)),
    scores: new Map(),
    eventSources: new Map(),
  };
}

/**
 * Inserts feature rows as of `asOf` plus raw events per student (its school and grade): one the day
 * before and one 100 days before, so the history covers every feature's look-back (the monitor
 * leaves out features whose look-back exceeds the history before the reference).
 */
export async function insertRows(store: DuckStore, rows: readonly GenRow[], asOf: Date): Promise<void> {
  const ts = asOf.toISOString().replace("T", " ").replace("Z", "");
  const lit = (v: number | null) => (v === null ? "NULL" : String(v));
  // features is a view over stored rows (storage/featureRows.ts): the rows join the snapshot's chain.
  const chain = await ensureFeatureSnapshot(store, BigInt(asOf.getTime()) * 1000n);
  for (let start = 0; start < rows.length; start += 500) {
    const chunk = rows.slice(start, start + 500);
    await store.run(
      `INSERT INTO features_rows (student_key, topic_id, as_of, accuracy_7d, avg_time_per_question_7d, attempts_7d,
         hint_usage_rate_30d, chain_id, last_activity_at) VALUES ${chunk
           .map(
             (r) =>
               `('${r.student}', '${r.topic}', TIMESTAMP '${ts}', ${lit(r.accuracy_7d)}, ${r.avg_time_per_question_7d}, ${r.attempts_7d}, ${r.hint_usage_rate_30d}, ${chain}, TIMESTAMP '${ts}' - INTERVAL 1 DAY)`,
           )
           .join(", ")}`,
    );
    await store.run(
      `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, school_id, grade, ingested_at) VALUES ${chunk
        .map(
          (r) =>
            `('e-${r.student}', 'video', '${r.student}', '${r.topic}', TIMESTAMP '${ts}' - INTERVAL 1 DAY, '${r.school}', ${r.grade}, TIMESTAMP '${ts}'), ('e0-${r.student}', 'video', '${r.student}', '${r.topic}', TIMESTAMP '${ts}' - INTERVAL 100 DAY, '${r.school}', ${r.grade}, TIMESTAMP '${ts}')`,
        )
        .join(", ")}`,
    );
  }
}

/** The retrain tests' clock and drift config (test/monitoring/retrainLoop.test.ts and test/monitoring/retrainKinds.int.test.ts). */
export const NOW = new Date("2025-03-21T00:00:00Z");
export const CFG: DriftConfig = {
  ...DEFAULT_DRIFT_CONFIG,
  features: [...TEST_FEATURES],
  rule: { minFeatures: 2, minSegments: 1, keyFeatures: [] },
  retrain: { ...DEFAULT_DRIFT_CONFIG.retrain, model: "elo-test", trainDays: 50, holdoutDays: 7 },
};

/** Quiz answers with P(correct) = sigmoid(ability - difficulty): something Elo can learn. */
export async function insertAnswers(store: DuckStore): Promise<void> {
  const g = new Xoshiro128(42);
  const difficulty = Array.from({ length: 20 }, () => g.normal());
  const rows: string[] = [];
  const start = Date.parse("2025-01-20T00:00:00Z");
  for (let s = 0; s < 160; s++) {
    const ability = 1.2 * g.normal();
    const school = `s${1 + (s % 4)}`;
    const grade = 5 + (s % 2);
    for (let k = 0; k < 40; k++) {
      const item = Math.floor(g.next() * 20);
      const p = 1 / (1 + Math.exp(-(ability - difficulty[item]!)));
      const ts = new Date(start + g.next() * 60 * 86_400_000)
        .toISOString()
        .replace("T", " ")
        .replace("Z", "");
      rows.push(
        `('q${s}-${k}', 'quiz_attempt', 'st${s}', 'topic${item % 4}', TIMESTAMP '${ts}', '${school}', ${grade}, 'item${item}', ${g.next() < p}, TIMESTAMP '${ts}')`,
      );
    }
  }
  for (let i = 0; i < rows.length; i += 1000)
    await store.run(
      `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, school_id, grade, question_id, is_correct, ingested_at) VALUES ${rows.slice(i, i + 1000).join(", ")}`,
    );
}

/** Writes a copy of the CSV at `data` with the `correct` column flipped; returns its path. */
export function flipLabels(data: string, correct: string): string {
  const lines = readFileSync(data, "utf8").trim().split("\n");
  const ci = lines[0]!.split(",").indexOf(correct);
  const flipped = lines.map((l, i) => {
    if (i === 0) return l;
    const f = l.split(",");
    f[ci] = f[ci] === "1" ? "0" : "1";
    return f.join(",");
  });
  const path = `${data}.flipped.csv`;
  writeFileSync(path, `${flipped.join("\n")}\n`);
  return path;
}

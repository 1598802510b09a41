import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { decayServedRow } from "../../serving/masteryView.ts";
import { runPipeline } from "../../serving/pipeline.ts";
import { scoreServedBatch } from "../../serving/servedBatch.ts";
import { loadServedModel, scoreServed } from "../../serving/servedScoring.ts";
import { trainServed } from "../../serving/servedTraining.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { baseDuplicateKeys } from "../../storage/servingTables.ts";

// The daily batch's served step (serving/servedBatch.ts) against `mastery score served` (scoreServed) on the same
// store: the same rows, to the bit, whatever the threads, ranges and group sizes. The store is a generated school
// through the real pipeline, plus rows that exercise the read's rules: copies of one event (the first ingested
// wins), several events at one time with event ids whose UTF-8 and UTF-16 orders differ (the fold's order is
// compareEvents'), and pairs with a stored score but no event before as-of (scored at the prior).

let work: string;
let dbPath: string;
let modelDir: string;
let asOf: Date;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "served-batch-int-"));
  dbPath = join(work, "mastery.duckdb");
  const store = await DuckStore.open(dbPath);
  try {
    const res = await runPipeline({
      store,
      pseudonymizer: new Pseudonymizer("served-batch-int-test-key-0123456789"),
      dataDir: join(work, "data"),
      generate: {
        students: 160,
        topics: 12,
        days: 28,
        seed: 7,
        start: "2026-09-01",
        eventsPerDay: 3.4,
        truthEvery: 7,
        outDir: join(work, "data"),
        workers: 0,
      },
    });
    // Scored three days before the last event: the pairs whose events all come later have stored rule/BKT/Elo
    // scores and nothing before as-of (prior pairs).
    asOf = new Date(res.asOf.getTime() - 3 * 86_400_000);
    const pair = await store.one<{ student_key: string; topic_id: string; ts: string }>(
      `SELECT student_key, topic_id, strftime(max(ts), '%Y-%m-%d %H:%M:%S') AS ts FROM raw_events
       WHERE ts < $1::TIMESTAMP - INTERVAL 1 DAY AND type = 'quiz_attempt' GROUP BY ALL ORDER BY count(*) DESC, 1, 2 LIMIT 1`,
      [asOf.toISOString()],
    );
    if (pair === undefined || pair === null) throw new Error("fixture: no quiz pair before as-of");
    const at = `${pair.ts}.250`;
    // Four answers at one instant; ids chosen so that DuckDB's (UTF-8) and JavaScript's (UTF-16) orders differ
    // ('\u{1F600}' sorts after '\uE000' in UTF-8, before it in UTF-16), plus a re-delivered copy of one of them
    // with another outcome, ingested later (ignored: the first ingested copy wins).
    const rows: [string, boolean, string][] = [
      ["tie-\uE000", true, "2026-10-01 00:00:00"],
      ["tie-\u{1F600}", false, "2026-10-01 00:00:00"],
      ["tie-a", false, "2026-10-01 00:00:00"],
      ["tie-b", true, "2026-10-01 00:00:00"],
      ["tie-a", true, "2026-10-02 00:00:00"],
    ];
    for (const [id, correct, ingested] of rows)
      await store.run(
        `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, question_id, is_correct, ingested_at)
         VALUES ($1, 'quiz_attempt', $2, $3, $4::TIMESTAMP, 'q-tie', $5, $6::TIMESTAMP)`,
        [id, pair.student_key, pair.topic_id, at, correct, ingested],
      );
  } finally {
    store.close();
  }
  modelDir = join(work, "model");
  await trainServed({
    dbPath,
    out: modelDir,
    labelDays: 7,
    latentFit: { maxEvents: 6000, maxEvaluations: 80 },
  });
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

const NOW = new Date("2027-01-01T00:00:00Z");

async function scoredCopy(
  name: string,
  score: (store: DuckStore) => Promise<unknown>,
): Promise<{ current: string[]; history: string[]; result: unknown }> {
  const path = join(work, `${name}.duckdb`);
  copyFileSync(dbPath, path);
  const store = await DuckStore.open(path);
  try {
    const result = await score(store);
    const rows = async (table: string) =>
      (
        await store.all<{ r: string }>(
          `SELECT concat_ws('|', student_key, topic_id, score_source, model_version, as_of, explanation,
                  printf('%.17g', mastery_score)) AS r
           FROM ${table} WHERE score_source IN ('served', 'latent') ORDER BY r`,
        )
      ).map((x) => x.r);
    return { current: await rows("student_mastery"), history: await rows("student_mastery_history"), result };
  } finally {
    store.close();
  }
}

describe("the daily batch's served step", () => {
  it("stores scoreServed's rows to the bit: inline, in threads, across ranges and small groups", {
    timeout: 300_000,
  }, async () => {
    const { model, version } = loadServedModel(modelDir);
    expect(model.json.servedFrom).toBe("latent");
    const ref = await scoredCopy("ref", (s) => scoreServed(s, model, version, { asOf, now: NOW }));
    expect(ref.current.length).toBeGreaterThan(1000);
    // Every pair has both rows, the prior pairs included.
    const priors = ref.current.filter((r) => r.includes('"kind":"prior"'));
    expect(priors.length).toBeGreaterThan(0);
    const variants: [string, Parameters<typeof scoreServedBatch>[3]][] = [
      ["inline", { asOf, now: NOW, workers: 0 }],
      ["threads", { asOf, now: NOW, workers: 2, parts: 3, groupEvents: 200 }],
      ["one-event groups", { asOf, now: NOW, workers: 0, parts: 7, groupEvents: 1 }],
    ];
    for (const [name, opts] of variants) {
      const progress: number[] = [];
      const got = await scoredCopy(name, (s) =>
        scoreServedBatch(s, model, version, { ...opts, onProgress: (done) => progress.push(done) }),
      );
      expect(got.current, name).toEqual(ref.current);
      expect(got.history, name).toEqual(ref.history);
      expect(progress.at(-1), name).toBe(ref.current.length / 2);
      const r = got.result as Awaited<ReturnType<typeof scoreServedBatch>>;
      expect(r.scored, name).toBe(ref.current.length / 2);
      expect(
        Object.values(r.evidence).reduce((a, b) => a + b, 0),
        name,
      ).toBe(r.scored);
    }
  });
});

describe("`mastery score served`", () => {
  it("runs the batch's served step (threads from the installed bin) and stores the same rows", {
    timeout: 300_000,
  }, async () => {
    const { model, version } = loadServedModel(modelDir);
    const ref = await scoredCopy("cli-ref", (s) =>
      scoreServedBatch(s, model, version, { asOf, now: NOW, workers: 0 }),
    );
    const db = join(work, "cli.duckdb");
    copyFileSync(dbPath, db);
    // The `mastery` bin as installed (dist/ after `npm ci`'s build; the TypeScript through tsx without one).
    const out = execFileSync(
      process.execPath,
      [
        join(import.meta.dirname, "../../bin/mastery.js"),
        ...[
          "score",
          "served",
          "--db",
          db,
          "--model",
          modelDir,
          "--as-of",
          asOf.toISOString(),
          "--workers",
          "2",
        ],
      ],
      { env: { ...process.env, MASTERY_QUIET: "1" }, encoding: "utf8" },
    );
    const res = JSON.parse(out) as { scored: number; workers: number; modelVersion: string };
    expect(res).toMatchObject({ scored: ref.current.length / 2, workers: 2, modelVersion: version });
    const store = await DuckStore.open(db);
    try {
      // The same rows but the write clock (last_updated, recorded_at, not compared) and the same as-of.
      const rows = await store.all<{ r: string }>(
        `SELECT concat_ws('|', student_key, topic_id, score_source, model_version, as_of, explanation,
                printf('%.17g', mastery_score)) AS r
         FROM student_mastery WHERE score_source IN ('served', 'latent') ORDER BY r`,
      );
      expect(rows.map((x) => x.r)).toEqual(ref.current);
    } finally {
      store.close();
    }
  });
});

describe("the served step of a daily run", () => {
  it("rescores the students with rows ingested since the watermark; the others' rows stay and decay at read time", {
    timeout: 300_000,
  }, async () => {
    const { model, version } = loadServedModel(modelDir);
    // Day 1: the full run as of asOf; then a day of new answers for a few students (ingested after the watermark).
    const day1 = join(work, "day1.duckdb");
    copyFileSync(dbPath, day1);
    const store = await DuckStore.open(day1);
    let watermark: string;
    let touched: string[];
    // Two hours later: few students have an event in between, so most are left alone.
    const asOf2 = new Date(asOf.getTime() + 2 * 3_600_000);
    try {
      await scoreServedBatch(store, model, version, { asOf, now: NOW, workers: 0 });
      watermark = String(
        (await store.one<{ u: bigint }>("SELECT epoch_us(max(ingested_at)) AS u FROM raw_events"))!.u,
      );
      touched = (
        await store.all<{ student_key: string }>(
          "SELECT DISTINCT student_key FROM raw_events ORDER BY student_key LIMIT 3",
        )
      ).map((r) => r.student_key);
      const answered = touched.slice();
      for (const [i, st] of answered.entries())
        await store.run(
          `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, question_id, is_correct, ingested_at)
           SELECT 'day2-' || $4 || '-' || topic_id, 'quiz_attempt', student_key, topic_id,
                  $2::TIMESTAMP - INTERVAL 1 HOUR, 'q-day2', $3, make_timestamp($1::BIGINT + 1000000)
           FROM (SELECT DISTINCT student_key, topic_id FROM raw_events WHERE student_key = $5)`,
          [watermark, asOf2.toISOString(), i % 2 === 0, i, st],
        );
      // Also scored again: the students with an event time between the two as-ofs, ingested before the watermark.
      for (const r of await store.all<{ student_key: string }>(
        "SELECT DISTINCT student_key FROM raw_events WHERE ts >= $1::TIMESTAMP AND ts < $2::TIMESTAMP",
        [asOf.toISOString(), asOf2.toISOString()],
      ))
        if (!touched.includes(r.student_key)) touched.push(r.student_key);
    } finally {
      store.close();
    }
    const incr = await scoredCopyOf(day1, "incr", (s) =>
      scoreServedBatch(s, model, version, {
        asOf: asOf2,
        now: NOW,
        workers: 2,
        since: { asOf, ingestedThroughUs: watermark },
      }),
    );
    const full = await scoredCopyOf(day1, "full", (s) =>
      scoreServedBatch(s, model, version, { asOf: asOf2, now: NOW, workers: 0 }),
    );
    const r = incr.result as Awaited<ReturnType<typeof scoreServedBatch>>;
    expect(r.incremental).toBe(true);
    const isTouched = (k: string) => touched.includes(k.split("|")[0]!);
    // The students with new rows: the full run's rows, to the bit (their other topics moved with the offset).
    expect(incr.rows.filter((x) => isTouched(x.key))).toEqual(full.rows.filter((x) => isTouched(x.key)));
    expect(r.scored).toBe(full.rows.filter((x) => isTouched(x.key)).length / 2);
    // The others: day 1's rows, which read time decays to the full run's scores.
    let worst = 0;
    let servedWorst = 0;
    let left = 0;
    for (const [i, x] of incr.rows.entries()) {
      const y = full.rows[i]!;
      expect(x.key).toBe(y.key);
      if (isTouched(x.key)) continue;
      expect(x.row.as_of.getTime()).toBe(asOf.getTime());
      left++;
      const moved = decayServedRow(x.row, asOf2);
      const d = Math.abs(moved.mastery_score - y.row.mastery_score);
      if (x.key.endsWith("|latent")) worst = Math.max(worst, d);
      else {
        // The served score is a map of the filter's (models/servedMastery.ts servedFromLatent): read time decays it
        // with the served floor, which matches the map of the decayed filter score up to the map's curvature.
        const moves = Math.abs(moved.mastery_score - x.row.mastery_score);
        servedWorst = Math.max(servedWorst, moves === 0 ? d : d / moves);
        if (moves === 0) expect(d).toBeLessThan(1e-12);
      }
    }
    expect(left).toBeGreaterThan(incr.rows.length / 2);
    expect(worst).toBeLessThan(1e-9);
    expect(servedWorst).toBeLessThan(0.02);
  });
});

async function scoredCopyOf(
  from: string,
  name: string,
  score: (store: DuckStore) => Promise<unknown>,
): Promise<{ rows: { key: string; row: Parameters<typeof decayServedRow>[0] }[]; result: unknown }> {
  const path = join(work, `${name}.duckdb`);
  copyFileSync(from, path);
  const store = await DuckStore.open(path);
  try {
    const result = await score(store);
    expect(await baseDuplicateKeys(store, "student_mastery")).toEqual([]);
    const rows = await store.all<{
      student_key: string;
      topic_id: string;
      score_source: string;
      as_of: Date;
      mastery_score: number;
      explanation: string;
    }>(
      `SELECT student_key, topic_id, score_source, as_of, mastery_score, explanation FROM student_mastery
       WHERE score_source IN ('served', 'latent') ORDER BY student_key, topic_id, score_source`,
    );
    return {
      rows: rows.map((r) => ({
        key: `${r.student_key}|${r.topic_id}|${r.score_source}`,
        row: { ...r, as_of: new Date(r.as_of), mastery_score: Number(r.mastery_score) },
      })),
      result,
    };
  } finally {
    store.close();
  }
}

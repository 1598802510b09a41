/**
 * Ingest of the real logs in ../shared/data through the built-in column mappings (ASSISTments as.csv, Cognitive
 * Tutor ct.tsv). Integration tier: they read shared data sets from beside the checkout (skipped, naming the
 * missing file, when absent) and take seconds each.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BUILTIN_MAPPINGS } from "../../features/columnMappings.ts";
import { ingestFile } from "../../features/ingest.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { leaks } from "./eventRows.ts";

const pseudonymizer = new Pseudonymizer("test-key-0123456789abcdef");
const NOW = new Date("2026-02-01T00:00:00Z");
const opts = { pseudonymizer, now: NOW };
const DATA = join(import.meta.dirname, "../../../shared/data");
const AS_CSV = join(DATA, "assistments_raw/as.csv");
const CT_TSV = join(DATA, "cognitive_tutor/ct.tsv");
const skipUnless = (path: string) => (existsSync(path) ? "" : ` [skipped: ${path} not found]`);
for (const path of [AS_CSV, CT_TSV])
  if (!existsSync(path)) console.warn(`skipping the ingest test of ${path}: not found (../shared/data)`);

describe("real logs through column mappings", () => {
  it.skipIf(!existsSync(AS_CSV))(
    `ingests ASSISTments as.csv: all 10,791 rows, synthetic monotone timestamps${skipUnless(AS_CSV)}`,
    async () => {
      const store = await DuckStore.open(":memory:");
      const r = await ingestFile(store, AS_CSV, {
        ...opts,
        mapping: BUILTIN_MAPPINGS.assistments!,
      });
      expect(r).toMatchObject({ accepted: 10791, duplicate: 0, rejected: 0 });
      const first = await store.one(
        `SELECT topic_id, question_id, is_correct, time_spent_sec, attempt_number, hints_used, school_id, class_id,
              strftime(ts, '%Y-%m-%dT%H:%M:%S') AS ts FROM raw_events WHERE event_id = 'assistments:33022537'`,
      );
      // 2008-09-01T00:00:00Z + 33,022,537 s = + 382 d 4 h 55 min 37 s = 2009-09-18T04:55:37Z.
      expect(first).toEqual({
        topic_id: "Box and Whisker",
        question_id: "51424",
        is_correct: true,
        time_spent_sec: 32.454,
        attempt_number: 1,
        hints_used: 0,
        school_id: "73",
        class_id: "13241",
        ts: "2009-09-18T04:55:37",
      });
      // attempt_count 0 (hints only) is clamped to attempt 1.
      const hintsOnly = await store.one(
        "SELECT attempt_number, hints_used, is_correct FROM raw_events WHERE event_id = 'assistments:35230695'",
      );
      expect(hintsOnly).toEqual({ attempt_number: 1, hints_used: 3, is_correct: false });
      const agg = await store.one<{ students: bigint; topics: bigint }>(
        "SELECT count(DISTINCT student_key) AS students, count(DISTINCT topic_id) AS topics FROM raw_events",
      );
      expect([Number(agg?.students), Number(agg?.topics)]).toEqual([902, 2]);
      store.close();
    },
  );

  it.skipIf(!existsSync(CT_TSV))(
    `ingests Cognitive Tutor ct.tsv: steps without a KC go to dead_letter, timestamps read as UTC${skipUnless(CT_TSV)}`,
    async () => {
      const store = await DuckStore.open(":memory:");
      const r = await ingestFile(store, CT_TSV, {
        ...opts,
        mapping: BUILTIN_MAPPINGS.cognitive_tutor!,
      });
      expect(r).toMatchObject({ accepted: 14701, duplicate: 0, rejected: 3519 });
      const reasons = await store.all("SELECT field, reason, count(*) AS n FROM dead_letter GROUP BY ALL");
      expect(reasons).toEqual([{ field: "topic_id", reason: "quiz_attempt.topic_id is required", n: 3519n }]);
      const row = await store.one(
        "SELECT question_id, is_correct, time_spent_sec, hints_used, strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts, topic_id FROM raw_events WHERE event_id = 'ct:1918'",
      );
      // Row 1918: RATIO2-001 / NumeratorQuantity1, first transaction 2006-11-14 10:17:05, no step duration.
      expect(row).toEqual({
        question_id: "RATIO2-001 / NumeratorQuantity1",
        is_correct: false,
        time_spent_sec: null,
        hints_used: 0,
        ts: "2006-11-14 10:17:05",
        topic_id: "Enter given rate numerator",
      });
      const students = await store.all<{ s: string }>(
        `SELECT DISTINCT "Anon Student Id" AS s FROM read_csv('${CT_TSV}', delim='\t', header=true, all_varchar=true)`,
      );
      expect(students).toHaveLength(11);
      expect(
        await leaks(
          store,
          students.map((s) => s.s),
        ),
      ).toEqual([]);
      store.close();
    },
  );
});

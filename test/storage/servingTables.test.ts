import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import {
  compactionReason,
  compactServingTables,
  DEFAULT_COMPACTION,
  deltaShares,
  foldDelta,
} from "../../storage/servingTables.ts";

let store: DuckStore;
beforeAll(async () => {
  store = await DuckStore.open(":memory:");
});
afterAll(() => store.close());

type Op =
  | { kind: "base" | "delta"; student: number; topic: number; source: "bkt" | "elo"; score: number }
  | { kind: "fold"; source: "bkt" | "elo" }
  | { kind: "compact" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constantFrom("base" as const, "delta" as const),
      student: fc.integer({ min: 0, max: 3 }),
      topic: fc.integer({ min: 0, max: 2 }),
      source: fc.constantFrom("bkt" as const, "elo" as const),
      score: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
    weight: 8,
  },
  fc.record({ kind: fc.constant("fold" as const), source: fc.constantFrom("bkt" as const, "elo" as const) }),
  fc.constant({ kind: "compact" as const }),
);

const read = () =>
  store.all<{ student_key: string; topic_id: string; score_source: string; mastery_score: number }>(
    `SELECT student_key, topic_id, score_source, mastery_score FROM student_mastery
     ORDER BY student_key, topic_id, score_source`,
  );

describe("student_mastery as the newest row per key over a base and an append-only delta", () => {
  it("property: reads as a plain table the writes replaced into, before and after folds and compactions", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
        await store.run("DELETE FROM student_mastery_base");
        await store.run("DELETE FROM student_mastery_delta");
        // The model: one row per key, replaced by every write (what INSERT OR REPLACE into a table did).
        const model = new Map<
          string,
          { student_key: string; topic_id: string; score_source: string; mastery_score: number }
        >();
        for (const op of ops) {
          if (op.kind === "fold") await foldDelta(store, "student_mastery", `score_source = '${op.source}'`);
          else if (op.kind === "compact") await compactServingTables(store);
          else {
            const row = {
              student_key: `s${op.student}`,
              topic_id: `t${op.topic}`,
              score_source: op.source,
              mastery_score: op.score,
            };
            // A base write is what a full run does: only after the delta's rows of its source were folded.
            if (op.kind === "base") {
              await foldDelta(store, "student_mastery", `score_source = '${op.source}'`);
              await store.run(
                `INSERT OR REPLACE INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
                 VALUES ($1, $2, $3, $4, 'v', now()::TIMESTAMP, '{}', now()::TIMESTAMP)`,
                [row.student_key, row.topic_id, row.mastery_score, row.score_source],
              );
            } else
              await store.run(
                `INSERT INTO student_mastery_delta (student_key, topic_id, mastery_score, score_source, model_version,
                   as_of, explanation, last_updated) VALUES ($1, $2, $3, $4, 'v', now()::TIMESTAMP, '{}', now()::TIMESTAMP)`,
                [row.student_key, row.topic_id, row.mastery_score, row.score_source],
              );
            model.set(`${row.student_key}|${row.topic_id}|${row.score_source}`, row);
          }
          const want = [...model.values()].sort((a, b) =>
            `${a.student_key}|${a.topic_id}|${a.score_source}` <
            `${b.student_key}|${b.topic_id}|${b.score_source}`
              ? -1
              : 1,
          );
          expect(await read()).toEqual(want);
        }
        const before = await read();
        await compactServingTables(store);
        expect(await read()).toEqual(before);
        const d = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery_delta");
        expect(d?.n).toBe(0n);
      }),
      { numRuns: 30 },
    );
  });

  it("a student_key filter on the view reaches both tables (the point read of GET /mastery)", async () => {
    // Rows of that student in both tables (a filter outside a table's min/max is pruned to an empty plan).
    await store.run(
      `INSERT INTO student_mastery_delta (student_key, topic_id, mastery_score, score_source, model_version, as_of,
         explanation, last_updated) VALUES ('sx', 't', 0.5, 'bkt', 'v', '2024-01-01', '{}', '2024-01-01')`,
    );
    await store.run(
      `INSERT INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated) VALUES ('sx', 'u', 0.5, 'bkt', 'v', '2024-01-01', '{}', '2024-01-01')`,
    );
    const plan = await store.all<{ explain_value: string }>(
      "EXPLAIN SELECT * FROM student_mastery WHERE student_key = 'sx'",
    );
    const text = plan.map((p) => p.explain_value).join("\n");
    // One filter per scan: the delta's newest rows, the base, and the delta the base is anti-joined with.
    expect(text.match(/student_key='sx'/g)?.length).toBe(3);
  });

  it("asks for a compaction past the share or the age, not before", () => {
    const s = (deltaRows: number, oldestDays: number | null) => [
      { table: "student_mastery" as const, baseRows: 1000, deltaRows, oldestDays },
    ];
    expect(compactionReason(s(0, null), DEFAULT_COMPACTION)).toBeNull();
    expect(compactionReason(s(249, 6.9), DEFAULT_COMPACTION)).toBeNull();
    expect(compactionReason(s(250, 1), DEFAULT_COMPACTION)).toMatch(/250 delta rows >= 0.25 x 1000/);
    expect(compactionReason(s(1, 7), DEFAULT_COMPACTION)).toMatch(/7.0 days old >= 7/);
  });

  it("counts the delta next to its base", async () => {
    await store.run("DELETE FROM student_mastery_base");
    await store.run("DELETE FROM student_mastery_delta");
    await store.run(
      `INSERT INTO student_mastery_delta (student_key, topic_id, mastery_score, score_source, model_version, as_of,
         explanation, last_updated) VALUES ('a', 't', 0.5, 'bkt', 'v', '2024-01-01', '{}', '2024-01-01')`,
    );
    const shares = await deltaShares(store, Date.parse("2024-01-04T00:00:00Z") * 1000);
    expect(shares.find((s) => s.table === "student_mastery")).toEqual({
      table: "student_mastery",
      baseRows: 0,
      deltaRows: 1,
      oldestDays: 3,
    });
  });
});

describe("a file of the plain-table layout", () => {
  it("moves to base + delta + view on open, rows and the student_key index kept", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "mastery-layout-"));
    const path = join(dir, "old.duckdb");
    const old = await DuckStore.open(path);
    await old.run("DROP VIEW student_mastery");
    await old.run("DROP TABLE student_mastery_delta");
    await old.run("ALTER TABLE student_mastery_base RENAME TO student_mastery");
    await old.run("CREATE INDEX student_mastery_by_student ON student_mastery (student_key)");
    await old.run(
      `INSERT INTO student_mastery (student_key, topic_id, mastery_score, score_source, model_version, as_of,
         explanation, last_updated) VALUES ('a', 't', 0.25, 'bkt', 'v', '2024-01-01', '{}', '2024-01-01')`,
    );
    old.close();
    const s = await DuckStore.open(path);
    try {
      const kinds = await s.all<{ n: string }>(
        "SELECT view_name AS n FROM duckdb_views() WHERE NOT internal AND view_name = 'student_mastery'",
      );
      expect(kinds).toHaveLength(1);
      const idx = await s.all<{ t: string }>(
        "SELECT table_name AS t FROM duckdb_indexes() WHERE index_name = 'student_mastery_by_student'",
      );
      expect(idx).toEqual([{ t: "student_mastery_base" }]);
      expect(await s.all("SELECT student_key, mastery_score FROM student_mastery")).toEqual([
        { student_key: "a", mastery_score: 0.25 },
      ]);
    } finally {
      s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a file whose process was killed right after it was created", () => {
  it("opens again (the layout's DDL is checkpointed, not left in the WAL)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "serving-kill-"));
    const file = join(dir, "killed.duckdb");
    const storeModule = pathToFileURL(resolve("storage/duckdb.ts")).href;
    const child = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "-e",
        `const { DuckStore } = await import(${JSON.stringify(storeModule)});
         await DuckStore.open(${JSON.stringify(file)});
         process.kill(process.pid, "SIGKILL");`,
      ],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(child.signal, child.stderr).toBe("SIGKILL");
    const store = await DuckStore.open(file);
    const rows = await store.all<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery");
    expect(Number(rows[0]!.n)).toBe(0);
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }, 90_000);
});

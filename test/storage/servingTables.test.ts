import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import {
  baseDuplicateKeys,
  compactionReason,
  compactServingTables,
  DEFAULT_COMPACTION,
  deltaShares,
  foldDelta,
  replaceBaseRows,
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
              // The base has no primary key (BASE_PRIMARY_KEY): a writer replaces a key's row itself.
              await store.run(
                "DELETE FROM student_mastery_base WHERE student_key = $1 AND topic_id = $2 AND score_source = $3",
                [row.student_key, row.topic_id, row.score_source],
              );
              await store.run(
                `INSERT INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated)
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
          // foldDelta keeps the base's keys unique without a primary key.
          expect(await baseDuplicateKeys(store, "student_mastery")).toEqual([]);
        }
        const before = await read();
        await compactServingTables(store);
        expect(await read()).toEqual(before);
        expect(await baseDuplicateKeys(store, "student_mastery")).toEqual([]);
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

/** The layered bases holding a PRIMARY KEY constraint. */
const primaryKeys = (s: DuckStore) =>
  s.all<{ table_name: string }>(
    `SELECT DISTINCT table_name FROM duckdb_constraints()
     WHERE constraint_type = 'PRIMARY KEY' AND table_name IN ('student_mastery_base', 'learner_state_base')
     ORDER BY table_name`,
  );

describe("replaceBaseRows: a new base swapped in for a set of rows (the full rule run's write)", () => {
  const KEEP = "NOT (b.score_source = 'rule_based' AND b.student_key = 'a')";
  const NEW_ROW = `SELECT 'a' AS student_key, 't1' AS topic_id, 0.75 AS mastery_score, 'rule_based' AS score_source,
    $mv AS model_version, TIMESTAMP '2024-02-01' AS as_of, '{"rule":2}' AS explanation,
    TIMESTAMP '2024-02-01' AS last_updated`;
  const ALL = "SELECT * FROM student_mastery_base ORDER BY student_key, topic_id, score_source";
  const seed = async (s: DuckStore) => {
    await s.run(
      "CREATE INDEX IF NOT EXISTS student_mastery_by_student ON student_mastery_base (student_key)",
    );
    await s.run(
      `INSERT INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of,
         explanation, last_updated, ex_base, ex_correct) VALUES
       ('a', 't1', 0.25, 'bkt', 'b1', '2024-01-01', '', '2024-01-01', 0.5, 3),
       ('a', 't1', 0.5, 'rule_based', 'r1', '2024-01-01', '{"rule":1}', '2024-01-01', NULL, NULL),
       ('b', 't2', 0.125, 'rule_based', 'r1', '2024-01-01', '{"rule":3}', '2024-01-01', NULL, NULL),
       ('c', 't3', 0.375, 'elo', 'e1', '2024-01-02', '', '2024-01-02', 0.25, 7)`,
    );
  };

  it("keeps every other row and column as it was, adds the new rows, keeps the indexes (and no primary key)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "serving-replace-"));
    const s = await DuckStore.open(join(dir, "r.duckdb"));
    try {
      await seed(s);
      const before = await s.all(ALL);
      // It returns how many rows `rows` inserted (the rule step checks it against the pairs it scored).
      const inserted = await s.transaction(() =>
        replaceBaseRows(s, "student_mastery", KEEP, NEW_ROW, { mv: "r2" }),
      );
      expect(inserted).toBe(1);
      const after = await s.all<Record<string, unknown>>(ALL);
      expect(after).toHaveLength(4);
      // The rows kept are equal in every column (the explanation numbers too); the replaced one is the new row.
      expect(after.filter((r) => r.score_source !== "rule_based" || r.student_key !== "a")).toEqual(
        before.filter((r) => r.score_source !== "rule_based" || r.student_key !== "a"),
      );
      expect(after.find((r) => r.score_source === "rule_based" && r.student_key === "a")).toMatchObject({
        mastery_score: 0.75,
        model_version: "r2",
        explanation: '{"rule":2}',
        ex_base: null,
      });
      // student_mastery's base keeps no primary key (BASE_PRIMARY_KEY; its ART would not fit at 100M); the
      // writers keep the keys unique.
      expect(await primaryKeys(s)).toEqual([{ table_name: "learner_state_base" }]);
      expect(await baseDuplicateKeys(s, "student_mastery")).toEqual([]);
      const idx = await s.all(
        "SELECT table_name FROM duckdb_indexes() WHERE index_name = 'student_mastery_by_student'",
      );
      expect(idx).toEqual([{ table_name: "student_mastery_base" }]);
      // The view over base + delta still reads it.
      const n = await s.one<{ n: bigint }>("SELECT count(*) AS n FROM student_mastery");
      expect(Number(n?.n)).toBe(4);
    } finally {
      s.close();
      await s.whenClosed();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("drops the primary key of a base written before (an older file) and keeps its indexes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "serving-replace-old-"));
    const s = await DuckStore.open(join(dir, "r.duckdb"));
    try {
      // The layout of a file from before: student_mastery's base with the table's primary key.
      const ddl = await s.one<{ sql: string }>(
        "SELECT sql FROM duckdb_tables() WHERE table_name = 'student_mastery_base'",
      );
      await s.run("DROP VIEW student_mastery");
      await s.run("DROP TABLE student_mastery_base");
      await s.run(
        (ddl?.sql ?? "").replace(/\);?\s*$/, ", PRIMARY KEY (student_key, topic_id, score_source));"),
      );
      await s.run(
        `CREATE VIEW student_mastery AS SELECT * EXCLUDE (delta_seq) FROM student_mastery_delta
         UNION ALL BY NAME SELECT * FROM student_mastery_base`,
      );
      await seed(s);
      expect(await primaryKeys(s)).toEqual([
        { table_name: "learner_state_base" },
        { table_name: "student_mastery_base" },
      ]);
      await s.transaction(() => replaceBaseRows(s, "student_mastery", KEEP, NEW_ROW, { mv: "r2" }));
      expect(await primaryKeys(s)).toEqual([{ table_name: "learner_state_base" }]);
      const idx = await s.all(
        "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'student_mastery_base'",
      );
      expect(idx).toEqual([{ index_name: "student_mastery_by_student" }]);
      expect(await s.all(ALL)).toHaveLength(4);
    } finally {
      s.close();
      await s.whenClosed();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("rolls back with its transaction: a failed write leaves the base as it was", async () => {
    const dir = mkdtempSync(join(tmpdir(), "serving-replace-"));
    const s = await DuckStore.open(join(dir, "r.duckdb"));
    try {
      await seed(s);
      const before = await s.all(ALL);
      // The new rows fail while they are inserted (after the kept rows went into the new table).
      const failing = `SELECT * REPLACE (error('injected failure') AS explanation) FROM (${NEW_ROW})`;
      await expect(
        s.transaction(() => replaceBaseRows(s, "student_mastery", KEEP, failing, { mv: "r2" })),
      ).rejects.toThrow(/injected failure/);
      expect(await s.all(ALL)).toEqual(before);
      const tables = await s.all(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'student_mastery_base%'",
      );
      expect(tables).toEqual([{ table_name: "student_mastery_base" }]);
    } finally {
      s.close();
      await s.whenClosed();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("is replayed from the WAL when the process dies after the commit, before any checkpoint", async () => {
    const dir = mkdtempSync(join(tmpdir(), "serving-replace-kill-"));
    const file = join(dir, "killed.duckdb");
    const mod = (p: string) => JSON.stringify(pathToFileURL(resolve(p)).href);
    const child = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "-e",
        `const { DuckStore } = await import(${mod("storage/duckdb.ts")});
         const { replaceBaseRows } = await import(${mod("storage/servingTables.ts")});
         const s = await DuckStore.open(${JSON.stringify(file)});
         await s.run(${JSON.stringify("CREATE INDEX IF NOT EXISTS student_mastery_by_student ON student_mastery_base (student_key)")});
         await s.run(${JSON.stringify(`INSERT INTO student_mastery_base (student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated) VALUES ('a', 't1', 0.5, 'rule_based', 'r1', '2024-01-01', '{}', '2024-01-01'), ('c', 't3', 0.375, 'elo', 'e1', '2024-01-02', '', '2024-01-02')`)});
         await s.run("CHECKPOINT");
         await s.run("SET checkpoint_threshold = '1TB'");
         await s.transaction(() => replaceBaseRows(s, "student_mastery", ${JSON.stringify(KEEP)}, ${JSON.stringify(NEW_ROW)}, { mv: "r2" }));
         process.kill(process.pid, "SIGKILL");`,
      ],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(child.signal, child.stderr).toBe("SIGKILL");
    const s = await DuckStore.open(file);
    try {
      const rows = await s.all(
        "SELECT student_key, score_source, mastery_score, model_version FROM student_mastery ORDER BY 1, 2",
      );
      expect(rows).toEqual([
        { student_key: "a", score_source: "rule_based", mastery_score: 0.75, model_version: "r2" },
        { student_key: "c", score_source: "elo", mastery_score: 0.375, model_version: "e1" },
      ]);
      const idx = await s.all(
        "SELECT table_name FROM duckdb_indexes() WHERE index_name = 'student_mastery_by_student'",
      );
      expect(idx).toEqual([{ table_name: "student_mastery_base" }]);
    } finally {
      s.close();
      await s.whenClosed();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

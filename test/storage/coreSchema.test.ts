/**
 * storage/coreSchema.ts: an empty store gets the catalog the migration left on the first empty store of the
 * process, replayed; it must be the same catalog, column by column, and behave the same. Anything else migrates.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { afterAll, describe, expect, it } from "vitest";
import { applyCoreSchema, type CoreSchemaRecipes } from "../../storage/coreSchema.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { DuckDBInstance } from "../../storage/duckdbApi.ts";
import { CORE_DDL, DUCK_ONLY_DDL } from "../../storage/schema.ts";

const DDL = [...CORE_DDL, ...DUCK_ONLY_DDL];
const dir = mkdtempSync(join(tmpdir(), "core-schema-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function connect(path = ":memory:"): Promise<{ conn: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(path);
  const conn = await instance.connect();
  return {
    conn,
    close: () => {
      conn.closeSync();
      instance.closeSync();
    },
  };
}

const rows = async (conn: DuckDBConnection, sql: string) => (await conn.runAndReadAll(sql)).getRowObjectsJS();

/** What the catalog says about the current database's objects, without their oids. */
async function catalog(conn: DuckDBConnection): Promise<Record<string, unknown[]>> {
  const db = "database_name = current_database()";
  return {
    tables: await rows(
      conn,
      `SELECT schema_name, table_name, temporary FROM duckdb_tables() WHERE ${db} ORDER BY ALL`,
    ),
    columns: await rows(
      conn,
      `SELECT table_name, column_index, column_name, data_type, column_default, is_nullable
       FROM duckdb_columns() WHERE ${db} ORDER BY table_name, column_index`,
    ),
    constraints: await rows(
      conn,
      `SELECT table_name, constraint_type, constraint_text, expression, constraint_column_names::VARCHAR AS cols
       FROM duckdb_constraints() WHERE ${db} ORDER BY ALL`,
    ),
    views: await rows(
      conn,
      `SELECT view_name, sql FROM duckdb_views() WHERE ${db} AND NOT internal ORDER BY ALL`,
    ),
    indexes: await rows(
      conn,
      `SELECT index_name, table_name, is_unique, is_primary, sql FROM duckdb_indexes() WHERE ${db} ORDER BY ALL`,
    ),
    sequences: await rows(
      conn,
      `SELECT sequence_name, start_value, min_value, max_value, increment_by, cycle, last_value
       FROM duckdb_sequences() WHERE ${db} ORDER BY ALL`,
    ),
  };
}

/** A base row and a newer delta row of one key, read back through the student_mastery view. */
async function newestRow(conn: DuckDBConnection) {
  const values = (score: number) =>
    `('k1', 'T1', ${score}, 'bkt', 'v1', TIMESTAMP '2026-03-01 10:00:00', '{}', TIMESTAMP '2026-03-01 10:00:00')`;
  const cols =
    "student_key, topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated";
  await conn.run(`INSERT INTO student_mastery_base (${cols}) VALUES ${values(0.25)}`);
  await conn.run(`INSERT INTO student_mastery_delta (${cols}) VALUES ${values(0.5)}, ${values(0.75)}`);
  return {
    view: await rows(conn, "SELECT topic_id, mastery_score FROM student_mastery"),
    seq: await rows(conn, "SELECT mastery_score, delta_seq FROM student_mastery_delta ORDER BY delta_seq"),
  };
}

describe("core schema of an empty store: replayed from the first migrated one", () => {
  it("the first empty store migrates; the next replays its CREATE statements and has the same catalog and behaviour", async () => {
    const recipes: CoreSchemaRecipes = new Map();
    const a = await connect();
    const b = await connect();
    try {
      expect(await applyCoreSchema(a.conn, DDL, recipes)).toBe("migrated");
      const recipe = recipes.get(DDL.join("\n;\n"));
      // 11 tables, 3 views, 1 sequence and 0 indexes today; the migration runs ~145 statements.
      expect(recipe?.length).toBeGreaterThanOrEqual(15);
      expect(recipe?.length).toBeLessThan(40);
      expect(await applyCoreSchema(b.conn, DDL, recipes)).toBe("replayed");
      const migrated = await catalog(a.conn);
      expect(migrated.tables).toHaveLength(11);
      expect(await catalog(b.conn)).toEqual(migrated);
      // The delta's sequence starts where the migrated one does; the view shows the newest delta row.
      const fromMigrated = await newestRow(a.conn);
      expect(fromMigrated).toEqual({
        view: [{ topic_id: "T1", mastery_score: 0.75 }],
        seq: [
          { mastery_score: 0.5, delta_seq: 1n },
          { mastery_score: 0.75, delta_seq: 2n },
        ],
      });
      expect(await newestRow(b.conn)).toEqual(fromMigrated);
    } finally {
      a.close();
      b.close();
    }
  });

  it("a store with anything in its catalog migrates: a replayed file opened again keeps its catalog", async () => {
    const recipes: CoreSchemaRecipes = new Map();
    const first = await connect();
    const path = join(dir, "replayed.duckdb");
    try {
      await applyCoreSchema(first.conn, DDL, recipes);
      const file = await connect(path);
      expect(await applyCoreSchema(file.conn, DDL, recipes)).toBe("replayed");
      const created = await catalog(file.conn);
      file.close();
      const again = await connect(path);
      try {
        expect(await applyCoreSchema(again.conn, DDL, recipes)).toBe("migrated");
        expect(await catalog(again.conn)).toEqual(created);
        expect(created).toEqual(await catalog(first.conn));
      } finally {
        again.close();
      }
    } finally {
      first.close();
    }
  });

  it("a file of the plain-table layout is migrated, not replayed, and ends in the view layout", async () => {
    const recipes: CoreSchemaRecipes = new Map();
    const first = await connect();
    await applyCoreSchema(first.conn, DDL, recipes);
    first.close();
    const old = await connect(join(dir, "old.duckdb"));
    try {
      await old.conn.run(CORE_DDL.find((d) => /student_mastery \(/.test(d)) as string);
      expect(await applyCoreSchema(old.conn, DDL, recipes)).toBe("migrated");
      expect(
        await rows(old.conn, "SELECT view_name FROM duckdb_views() WHERE view_name = 'student_mastery'"),
      ).toEqual([{ view_name: "student_mastery" }]);
      expect(
        await rows(
          old.conn,
          "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'student_mastery_%' ORDER BY 1",
        ),
      ).toEqual([
        { table_name: "student_mastery_base" },
        { table_name: "student_mastery_delta" },
        { table_name: "student_mastery_history" },
      ]);
    } finally {
      old.close();
    }
  });

  it("DuckStore.open gives every :memory: store the migrated catalog", async () => {
    const migrated = await connect();
    try {
      await applyCoreSchema(migrated.conn, DDL, new Map());
      const want = await catalog(migrated.conn);
      for (let i = 0; i < 3; i++) {
        const store = await DuckStore.open(":memory:");
        try {
          expect(await catalog(store.conn)).toEqual(want);
        } finally {
          store.close();
        }
      }
    } finally {
      migrated.close();
    }
  });
});

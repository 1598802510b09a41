import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { pgDialectDdl } from "../../storage/postgres.ts";
import { CORE_DDL } from "../../storage/schema.ts";

const dir = mkdtempSync(join(tmpdir(), "raw-layout-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rawEventsDdl = CORE_DDL.find((d) => /CREATE TABLE IF NOT EXISTS raw_events\s*\(/.test(d)) as string;

/** The compression methods DuckDB stored a raw_events column's data segments with. */
const methods = async (store: DuckStore, column: string): Promise<string[]> =>
  (
    await store.all<{ m: string }>(
      `SELECT DISTINCT compression AS m FROM pragma_storage_info('raw_events')
       WHERE column_name = $c AND segment_type = 'VARCHAR' ORDER BY m`,
      { c: column },
    )
  ).map((r) => r.m);

describe("raw_events' stored layout (storage/schema.ts)", () => {
  it("PostgreSQL gets the DDL without DuckDB's per-column compression hint", () => {
    expect(pgDialectDdl("CREATE TABLE t (a VARCHAR NOT NULL USING COMPRESSION uncompressed, b DOUBLE)")).toBe(
      "CREATE TABLE t (a VARCHAR NOT NULL, b DOUBLE PRECISION)",
    );
    expect(rawEventsDdl).toMatch(/event_id VARCHAR NOT NULL USING COMPRESSION uncompressed,/);
    for (const ddl of CORE_DDL) expect(pgDialectDdl(ddl)).not.toMatch(/USING COMPRESSION/);
  });

  it("DuckDB writes event_id uncompressed, other strings as it chooses, and keeps the hint after a reopen", async () => {
    const path = join(dir, "layout.duckdb");
    // Ids repeated 3 ways (an assignment's fan-out is like this): without the hint DuckDB would store them
    // with a dictionary, as it does the student keys beside them.
    const insert = (store: DuckStore, round: number) =>
      store.run(
        `INSERT INTO raw_events (event_id, "type", student_key, topic_id, ts, ingested_at)
         SELECT 'e-' || (i % 3), 'quiz_attempt', 'k-' || (i % 3), 't1', TIMESTAMP '2026-09-01' + INTERVAL (i) SECOND,
                TIMESTAMP '2026-12-05' + INTERVAL (${round}) DAY
         FROM range(30000) r(i)`,
      );
    let store = await DuckStore.open(path, { encryption: null });
    await insert(store, 0);
    await store.run("CHECKPOINT");
    expect(await methods(store, "event_id")).toEqual(["Uncompressed"]);
    expect(await methods(store, "student_key")).toEqual(["Dictionary"]);
    store.close();
    store = await DuckStore.open(path, { encryption: null });
    await insert(store, 1);
    await store.run("CHECKPOINT");
    expect(await methods(store, "event_id")).toEqual(["Uncompressed"]);
    const counts = await store.all<{ event_id: string; n: bigint }>(
      "SELECT event_id, count(*) AS n FROM raw_events GROUP BY event_id ORDER BY event_id",
    );
    expect(counts).toEqual([
      { event_id: "e-0", n: 20000n },
      { event_id: "e-1", n: 20000n },
      { event_id: "e-2", n: 20000n },
    ]);
    store.close();
  });
});

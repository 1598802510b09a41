import type { DuckStore } from "../storage/duckdb.ts";

/** "rows/xor of row hashes" of each (name, query): equal digests mean the same rows. */
export async function tableDigests(
  store: DuckStore,
  queries: readonly (readonly [string, string])[],
): Promise<Record<string, string>> {
  const digest: Record<string, string> = {};
  for (const [name, sql] of queries) {
    const r = await store.one<{ n: bigint; h: bigint }>(
      `SELECT count(*) AS n, bit_xor(hash(t)) AS h FROM (${sql}) t`,
    );
    digest[name] = `${r?.n}/${r?.h}`;
  }
  return digest;
}

/** The tables the daily batch writes (after ingest's raw_events), the wall-clock columns left out. */
export const BATCH_DIGEST_QUERIES = [
  ["raw_events", "SELECT * EXCLUDE (ingested_at) FROM raw_events"],
  ["student_mastery", "SELECT * EXCLUDE (last_updated) FROM student_mastery"],
  ["student_mastery_history", "SELECT * EXCLUDE (recorded_at) FROM student_mastery_history"],
  ["learner_state", "SELECT * EXCLUDE (updated_at) FROM learner_state"],
  ["features", "SELECT * FROM features"],
  ["bkt_elo_watermark", "SELECT * EXCLUDE (ingested_through_us) FROM bkt_elo_watermark"],
] as const;

/**
 * What a BKT/Elo run stored, as "rows/xor of row hashes" per table (learner_state, student_mastery, its
 * history, the batch watermark): equal digests mean the same rows. `withoutClocks` leaves out the
 * wall-clock columns (updated_at, last_updated, recorded_at), for runs not pinned to one `now`.
 */
export function bktEloDigest(
  store: DuckStore,
  opts: { withoutClocks: boolean },
): Promise<Record<string, string>> {
  const except = (col: string) => (opts.withoutClocks ? ` EXCLUDE (${col})` : "");
  return tableDigests(store, [
    ["learner_state", `SELECT *${except("updated_at")} FROM learner_state`],
    ["student_mastery", `SELECT *${except("last_updated")} FROM student_mastery`],
    ["student_mastery_history", `SELECT *${except("recorded_at")} FROM student_mastery_history`],
    ["bkt_elo_watermark", "SELECT * FROM bkt_elo_watermark"],
  ]);
}

import type { DuckStore } from "../storage/duckdb.ts";

/**
 * What a BKT/Elo run stored, as "rows/xor of row hashes" per table (learner_state, student_mastery, its
 * history, the batch watermark): equal digests mean the same rows. `withoutClocks` leaves out the
 * wall-clock columns (updated_at, last_updated, recorded_at), for runs not pinned to one `now`.
 */
export async function bktEloDigest(
  store: DuckStore,
  opts: { withoutClocks: boolean },
): Promise<Record<string, string>> {
  const except = (col: string) => (opts.withoutClocks ? ` EXCLUDE (${col})` : "");
  const digest: Record<string, string> = {};
  for (const [name, sql] of [
    ["learner_state", `SELECT *${except("updated_at")} FROM learner_state`],
    ["student_mastery", `SELECT *${except("last_updated")} FROM student_mastery`],
    ["student_mastery_history", `SELECT *${except("recorded_at")} FROM student_mastery_history`],
    ["bkt_elo_watermark", "SELECT * FROM bkt_elo_watermark"],
  ] as const) {
    const r = await store.one<{ n: bigint; h: bigint }>(
      `SELECT count(*) AS n, bit_xor(hash(t)) AS h FROM (${sql}) t`,
    );
    digest[name] = `${r?.n}/${r?.h}`;
  }
  return digest;
}

import type { DuckStore } from "../storage/duckdb.ts";

/**
 * The benches' "new day": a share of the students (by a hash of the key: hash % mod < below) repeat their
 * events of the day before `from` (default: the store's newest event) one day later, with new event ids
 * (id + "-next") and ingested now, so an incremental run sees them as new. Returns nothing; count the rows
 * with `event_id LIKE '%-next'`.
 */
export async function appendNextDay(
  store: DuckStore,
  opts: { mod: number; below: number; from?: Date },
): Promise<void> {
  const since =
    opts.from === undefined
      ? "(SELECT max(ts) - INTERVAL 1 DAY FROM raw_events)"
      : "make_timestamp($t::BIGINT) - INTERVAL 1 DAY";
  await store.run(
    `INSERT INTO raw_events
     SELECT * REPLACE (event_id || '-next' AS event_id, ts + INTERVAL 1 DAY AS ts, now()::TIMESTAMP AS ingested_at)
     FROM raw_events
     WHERE hash(student_key) % ${Math.trunc(opts.mod)} < ${Math.trunc(opts.below)} AND ts >= ${since}`,
    opts.from === undefined ? {} : { t: BigInt(opts.from.getTime()) * 1000n },
  );
}

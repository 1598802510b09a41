import type { DuckStore } from "../../storage/duckdb.ts";

/** `perDay[d]` events of (source, type) on day d after 2026-02-01, with optional columns set by `cols`. */
export async function insertDaily(
  store: DuckStore,
  source: string,
  type: string,
  perDay: readonly number[],
  cols: (day: number) => Record<string, string> = () => ({}),
): Promise<void> {
  for (let d = 0; d < perDay.length; d++) {
    const n = perDay[d]!;
    if (n === 0) continue;
    const extra = cols(d);
    const names = Object.keys(extra);
    await store.run(
      `INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, source, ingested_at${names.map((c) => `, ${c}`).join("")})
       SELECT '${source}-${type}-${d}-' || i, '${type}', 's' || (i % 7), 't1',
              TIMESTAMP '2026-02-01 08:00:00' + INTERVAL ${d} DAY + INTERVAL (i) SECOND, '${source}',
              TIMESTAMP '2026-03-01 00:00:00'${names.map((c) => `, ${extra[c]}`).join("")}
       FROM range(${n}) r(i)`,
    );
  }
}

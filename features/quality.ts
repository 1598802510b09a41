/**
 * Data-quality report over the raw zone: completeness of required fields (accepted + rejected
 * rows), freshness per source and event type, null rates per column and type, and dead-letter
 * counts by field and reason. Returned as data so the CLI, the server and monitoring share it.
 */
import type { DuckStore } from "../storage/duckdb.ts";
import { EVENT_SCHEMAS, EVENT_TYPES, type EventType } from "./contracts.ts";
import { ident, lit } from "./ingestSql.ts";
import {
  DEFAULT_QUALITY_DRIFT_OPTIONS,
  type QualityDriftOptions,
  type SchemaDriftReport,
  schemaDrift,
  type VolumeReport,
  volumeAnomalies,
} from "./qualityDrift.ts";

export interface CompletenessRow {
  type: EventType;
  field: string;
  /** Events of this type seen: accepted (distinct event_id) + rejected rows. */
  seen: number;
  /** Rows rejected because this required field was missing. */
  missing: number;
  /** 1 - missing / seen (1 when nothing was seen). */
  completeness: number;
}

export interface FreshnessRow {
  source: string;
  type: string;
  events: number;
  lastEventAt: string;
  lastIngestedAt: string;
  /** Seconds from the newest event timestamp to `asOf`. */
  secondsSinceLastEvent: number;
}

export interface NullRateRow {
  type: string;
  column: string;
  rows: number;
  nullRate: number;
}

export interface DeadLetterRow {
  field: string;
  /** The reason with the offending value removed, so equal problems group together. */
  reason: string;
  count: number;
}

export interface QualityReport {
  asOf: string;
  totals: { rawRows: number; events: number; deadLetterRows: number; rejectedRows: number };
  completeness: CompletenessRow[];
  freshness: FreshnessRow[];
  nullRates: NullRateRow[];
  deadLetters: DeadLetterRow[];
  /** New, missing and retyped fields per source (features/qualityDrift.ts). */
  schemaDrift: SchemaDriftReport;
  /** Daily volume per source and type against the trailing baseline. */
  volume: VolumeReport;
}

/** raw_events columns that belong to each type (others are null by design and not reported). */
const TYPE_COLUMNS: Record<EventType, string[]> = (() => {
  const out = {} as Record<EventType, string[]>;
  for (const t of EVENT_TYPES) {
    const cols = Object.keys(EVENT_SCHEMAS[t].properties).filter(
      (c) => !["type", "student_id", "timestamp", "topic_ids"].includes(c),
    );
    out[t] = ["student_key", "topic_id", "ts", ...cols];
  }
  return out;
})();

const num = (v: unknown): number => (typeof v === "bigint" ? Number(v) : typeof v === "number" ? v : 0);
const iso = (v: unknown): string => (v instanceof Date ? v.toISOString() : String(v));

export async function qualityReport(
  store: DuckStore,
  asOf: Date = new Date(),
  driftOptions: QualityDriftOptions = DEFAULT_QUALITY_DRIFT_OPTIONS,
): Promise<QualityReport> {
  const totalsRow = await store.one(
    `SELECT (SELECT count(*) FROM raw_events) AS raw_rows,
            (SELECT count(DISTINCT event_id) FROM raw_events) AS events,
            (SELECT count(*) FROM dead_letter) AS dl_rows,
            (SELECT count(*) FROM (SELECT DISTINCT source, row_number FROM dead_letter)) AS rejected`,
  );
  const totals = {
    rawRows: num(totalsRow?.raw_rows),
    events: num(totalsRow?.events),
    deadLetterRows: num(totalsRow?.dl_rows),
    rejectedRows: num(totalsRow?.rejected),
  };

  const accepted = new Map<string, number>();
  for (const r of await store.all(
    "SELECT type, count(DISTINCT event_id) AS n FROM raw_events GROUP BY type",
  )) {
    accepted.set(String(r.type), num(r.n));
  }
  const rejectedByType = new Map<string, number>();
  for (const r of await store.all(
    "SELECT type, count(*) AS n FROM (SELECT DISTINCT source, row_number, type FROM dead_letter) GROUP BY type",
  )) {
    rejectedByType.set(String(r.type), num(r.n));
  }
  const missing = new Map<string, number>();
  for (const r of await store.all(
    `SELECT type, field, count(*) AS n FROM dead_letter WHERE reason LIKE '% is required%' GROUP BY type, field`,
  )) {
    missing.set(`${r.type}\u0000${r.field}`, num(r.n));
  }
  const completeness: CompletenessRow[] = [];
  for (const t of EVENT_TYPES) {
    const seen = (accepted.get(t) ?? 0) + (rejectedByType.get(t) ?? 0);
    for (const field of EVENT_SCHEMAS[t].required) {
      if (field === "type") continue;
      const m = missing.get(`${t}\u0000${field}`) ?? 0;
      completeness.push({ type: t, field, seen, missing: m, completeness: seen === 0 ? 1 : 1 - m / seen });
    }
  }

  const asOfLit = `TIMESTAMP ${lit(asOf.toISOString().replace("T", " ").replace("Z", ""))}`;
  const freshness: FreshnessRow[] = (
    await store.all(
      `SELECT coalesce(source, '(none)') AS source, type, count(DISTINCT event_id) AS events, max(ts) AS last_ts,
              max(ingested_at) AS last_ingested, epoch(${asOfLit}) - epoch(max(ts)) AS age
       FROM raw_events GROUP BY ALL ORDER BY source, type`,
    )
  ).map((r) => ({
    source: String(r.source),
    type: String(r.type),
    events: num(r.events),
    lastEventAt: iso(r.last_ts),
    lastIngestedAt: iso(r.last_ingested),
    secondsSinceLastEvent: num(r.age),
  }));

  const nullRates: NullRateRow[] = [];
  for (const t of EVENT_TYPES) {
    const cols = TYPE_COLUMNS[t];
    const row = await store.one(
      `SELECT count(*) AS n, ${cols.map((c, i) => `count(*) FILTER (WHERE ${ident(c)} IS NULL) AS c${i}`).join(", ")}
       FROM raw_events WHERE type = $t`,
      { t },
    );
    const n = num(row?.n);
    if (n === 0) continue;
    cols.forEach((c, i) => {
      nullRates.push({ type: t, column: c, rows: n, nullRate: num(row?.[`c${i}`]) / n });
    });
  }

  const deadLetters: DeadLetterRow[] = (
    await store.all(
      `SELECT field, regexp_replace(reason, ' \\(got .*\\)$', '') AS reason, count(*) AS n
       FROM dead_letter GROUP BY ALL ORDER BY n DESC, field, reason`,
    )
  ).map((r) => ({ field: String(r.field), reason: String(r.reason), count: num(r.n) }));

  return {
    asOf: asOf.toISOString(),
    totals,
    completeness,
    freshness,
    nullRates,
    deadLetters,
    schemaDrift: await schemaDrift(store, driftOptions),
    volume: await volumeAnomalies(store, driftOptions),
  };
}

/** Plain-text rendering for the CLI. */
export function formatQualityReport(r: QualityReport): string {
  const lines: string[] = [];
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  lines.push(`Data quality as of ${r.asOf}`);
  lines.push(
    `raw rows ${r.totals.rawRows}, events ${r.totals.events}, rejected rows ${r.totals.rejectedRows} ` +
      `(${r.totals.deadLetterRows} dead-letter entries)`,
  );
  lines.push("", "Completeness of required fields (accepted + rejected):");
  for (const c of r.completeness) {
    if (c.seen === 0) continue;
    lines.push(
      `  ${`${c.type}.${c.field}`.padEnd(32)} ${pct(c.completeness).padStart(8)}  missing ${c.missing}/${c.seen}`,
    );
  }
  lines.push("", "Freshness (newest event per source and type):");
  for (const f of r.freshness) {
    const age = f.secondsSinceLastEvent;
    const ageText =
      age < 3600
        ? `${age.toFixed(0)} s`
        : age < 172800
          ? `${(age / 3600).toFixed(1)} h`
          : `${(age / 86400).toFixed(1)} d`;
    lines.push(
      `  ${f.source.padEnd(24)} ${f.type.padEnd(13)} ${String(f.events).padStart(9)} events, last ${f.lastEventAt} (${ageText} ago)`,
    );
  }
  lines.push("", "Null rates (columns of each type):");
  for (const n of r.nullRates) {
    if (n.nullRate === 0) continue;
    lines.push(`  ${`${n.type}.${n.column}`.padEnd(32)} ${pct(n.nullRate).padStart(8)} of ${n.rows}`);
  }
  if (r.nullRates.every((n) => n.nullRate === 0)) lines.push("  (no nulls)");
  lines.push("", "Dead letters by field and reason:");
  for (const d of r.deadLetters) lines.push(`  ${String(d.count).padStart(8)}  ${d.field}: ${d.reason}`);
  if (r.deadLetters.length === 0) lines.push("  (none)");
  const sd = r.schemaDrift;
  lines.push(
    "",
    `Schema drift (${sd.groups} source/type groups vs ${
      sd.referenceSetAt === null
        ? "each one's first profile"
        : `the reference set ${sd.referenceSetAt} (${sd.storedGroups} groups; others vs their first profile)`
    }):`,
  );
  for (const c of sd.changes)
    lines.push(
      `  ${c.change.padEnd(8)} ${`${c.origin}:${c.source}`.padEnd(30)} ${c.type.padEnd(13)} ${c.detail}`,
    );
  if (sd.changes.length === 0) lines.push("  (none)");
  const v = r.volume;
  lines.push(
    "",
    `Volume anomalies (daily events vs the trailing ${v.options.baselineDays}-day median, |robust z| >= ${v.options.threshold}, last ${v.options.reportDays} days to ${v.lastDay ?? "-"}):`,
  );
  for (const a of v.anomalies)
    lines.push(
      `  ${a.day} ${a.anomaly!.padEnd(5)} ${a.source.padEnd(24)} ${a.type.padEnd(13)} ${String(a.count).padStart(8)} vs median ${a.median} (z ${a.z!.toFixed(1)})`,
    );
  if (v.anomalies.length === 0) lines.push("  (none)");
  return lines.join("\n");
}

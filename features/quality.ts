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

type SectionFn<K extends QualitySection> = (
  store: DuckStore,
  asOf: Date,
  drift: QualityDriftOptions,
) => Promise<QualityReport[K]>;

/** The report's parts, in the order they are computed (each is a few queries over the raw zone). */
export const QUALITY_SECTIONS = [
  "totals",
  "completeness",
  "freshness",
  "nullRates",
  "deadLetters",
  "schemaDrift",
  "volume",
] as const;
export type QualitySection = (typeof QUALITY_SECTIONS)[number];

const totalsSection: SectionFn<"totals"> = async (store) => {
  const totalsRow = await store.one(
    `SELECT (SELECT count(*) FROM raw_events) AS raw_rows,
            (SELECT count(DISTINCT event_id) FROM raw_events) AS events,
            (SELECT count(*) FROM dead_letter) AS dl_rows,
            (SELECT count(*) FROM (SELECT DISTINCT source, row_number FROM dead_letter)) AS rejected`,
  );
  return {
    rawRows: num(totalsRow?.raw_rows),
    events: num(totalsRow?.events),
    deadLetterRows: num(totalsRow?.dl_rows),
    rejectedRows: num(totalsRow?.rejected),
  };
};

const completenessSection: SectionFn<"completeness"> = async (store) => {
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
  return completeness;
};

const freshnessSection: SectionFn<"freshness"> = async (store, asOf) => {
  const asOfLit = `TIMESTAMP ${lit(asOf.toISOString().replace("T", " ").replace("Z", ""))}`;
  return (
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
};

const nullRatesSection: SectionFn<"nullRates"> = async (store) => {
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
  return nullRates;
};

const deadLettersSection: SectionFn<"deadLetters"> = async (store) =>
  (
    await store.all(
      `SELECT field, regexp_replace(reason, ' \\(got .*\\)$', '') AS reason, count(*) AS n
       FROM dead_letter GROUP BY ALL ORDER BY n DESC, field, reason`,
    )
  ).map((r) => ({ field: String(r.field), reason: String(r.reason), count: num(r.n) }));

const SECTION_FNS: { [K in QualitySection]: SectionFn<K> } = {
  totals: totalsSection,
  completeness: completenessSection,
  freshness: freshnessSection,
  nullRates: nullRatesSection,
  deadLetters: deadLettersSection,
  schemaDrift: (store, _asOf, drift) => schemaDrift(store, drift),
  volume: (store, _asOf, drift) => volumeAnomalies(store, drift),
};

export async function qualityReport(
  store: DuckStore,
  asOf: Date = new Date(),
  driftOptions: QualityDriftOptions = DEFAULT_QUALITY_DRIFT_OPTIONS,
): Promise<QualityReport> {
  const out: Partial<QualityReport> = { asOf: asOf.toISOString() };
  for (const k of QUALITY_SECTIONS) {
    (out as Record<string, unknown>)[k] = await SECTION_FNS[k](store, asOf, driftOptions);
  }
  return out as QualityReport;
}

/** A report computed within a time budget: the sections done by then, and which were not. */
export type BudgetedQualityReport = Partial<Omit<QualityReport, "asOf">> & {
  asOf: string;
  /** "partial": the budget ran out; `missing` lists the sections not computed. */
  status: "complete" | "partial";
  missing: QualitySection[];
  budgetMs: number;
  elapsedMs: number;
};

export interface QualityBudgetOptions {
  asOf?: Date;
  drift?: QualityDriftOptions;
  /** Wall-clock budget (ms): no section starts after it, and the answer never waits past it. */
  budgetMs: number;
  /**
   * Runs one section's queries (the server passes its store gate, so other requests get the store
   * between sections instead of waiting for the whole report).
   */
  runSection?: <T>(fn: () => Promise<T>) => Promise<T>;
}

/**
 * The data-quality report with a time budget, in chunks: one section at a time, yielding to the
 * event loop (setImmediate) between them. When the budget runs out the answer is returned at
 * once with the sections computed so far and `status: "partial"`; a section still running then
 * finishes in the background (its result is dropped) since a DuckDB query is not interruptible here.
 */
export async function qualityReportWithin(
  store: DuckStore,
  opts: QualityBudgetOptions,
): Promise<BudgetedQualityReport> {
  if (!(Number.isFinite(opts.budgetMs) && opts.budgetMs > 0)) {
    throw new RangeError(`quality budgetMs must be a positive number of milliseconds (got ${opts.budgetMs})`);
  }
  const asOf = opts.asOf ?? new Date();
  const drift = opts.drift ?? DEFAULT_QUALITY_DRIFT_OPTIONS;
  const runSection = opts.runSection ?? (<T>(fn: () => Promise<T>) => fn());
  const started = performance.now();
  const deadline = started + opts.budgetMs;
  const out: Record<string, unknown> = {};
  const missing: QualitySection[] = [];
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), opts.budgetMs);
    timer.unref?.();
  });
  try {
    for (const k of QUALITY_SECTIONS) {
      await new Promise<void>((r) => setImmediate(r));
      if (missing.length > 0 || performance.now() >= deadline) {
        missing.push(k);
        continue;
      }
      const running = runSection(() => SECTION_FNS[k](store, asOf, drift) as Promise<unknown>);
      const r = await Promise.race([running, expired]);
      if (r === TIMED_OUT) {
        // Finishes in the background; its failure, if any, must not become an unhandled rejection.
        running.catch(() => {});
        missing.push(k);
        continue;
      }
      out[k] = r;
    }
  } finally {
    clearTimeout(timer);
  }
  return {
    asOf: asOf.toISOString(),
    ...out,
    status: missing.length === 0 ? "complete" : "partial",
    missing,
    budgetMs: opts.budgetMs,
    elapsedMs: Math.round(performance.now() - started),
  } as BudgetedQualityReport;
}

const TIMED_OUT = Symbol("timed out");

/** Thrown by qualityReportOrThrow when the budget ran out (the metrics refresh keeps its last values). */
export class QualityBudgetError extends Error {
  readonly code = "QUALITY_BUDGET_EXCEEDED";
  constructor(readonly partial: BudgetedQualityReport) {
    super(
      `data-quality report exceeded its ${partial.budgetMs} ms budget (not computed: ${partial.missing.join(", ")}); ` +
        "raise quality_budget_ms or investigate the raw zone's size",
    );
    this.name = "QualityBudgetError";
  }
}

/** A complete report within the budget, or QualityBudgetError. */
export async function qualityReportOrThrow(
  store: DuckStore,
  opts: QualityBudgetOptions,
): Promise<QualityReport> {
  const r = await qualityReportWithin(store, opts);
  if (r.status !== "complete") throw new QualityBudgetError(r);
  const { status: _s, missing: _m, budgetMs: _b, elapsedMs: _e, ...report } = r;
  return report as QualityReport;
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

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildFeatures } from "../../features/windows.ts";
import { DEFAULT_DRIFT_CONFIG } from "../../monitoring/config.ts";
import { checkDrift, defaultWindows } from "../../monitoring/driftMonitor.ts";
import { DuckStore } from "../../storage/duckdb.ts";

/** 20 days of stationary quiz events for 400 students over 5 topics, features built only at the end. */
async function freshInstall(store: DuckStore): Promise<Date> {
  await store.run(`INSERT INTO raw_events (event_id, type, student_key, topic_id, ts, school_id, grade,
      is_correct, time_spent_sec, hints_used, source, ingested_at)
    SELECT 'e' || i, 'quiz_attempt', 'stu' || (i % 400), 't' || ((i // 400) % 5),
      TIMESTAMP '2025-01-01' + to_microseconds(CAST((hash(i, 'ts') % (20 * 86400)) * 1000000 AS BIGINT)),
      's' || (i % 4), 5, hash(i, 'y') % 3 > 0, CAST(20 + hash(i, 't') % 40 AS DOUBLE), 0, 'lms', TIMESTAMP '2025-01-01'
    FROM range(40000) t(i)`);
  const asOf = new Date("2025-01-21T00:00:00Z");
  await buildFeatures(store, asOf);
  return asOf;
}

describe("drift check on a fresh install (one feature snapshot)", () => {
  let store: DuckStore;
  beforeEach(async () => {
    store = await DuckStore.open(":memory:");
  });
  afterEach(() => store.close());

  it("builds the reference from raw_events point in time and skips features longer than the history", async () => {
    await freshInstall(store);
    const cfg = { ...DEFAULT_DRIFT_CONFIG, scores: false };
    const w = await defaultWindows(store, cfg);
    const check = await checkDrift(store, {
      config: cfg,
      current: w.current,
      reference: { kind: "window", window: w.reference, label: "before" },
      record: false,
    });
    expect(check.builtReference?.asOf).toBe(new Date(w.reference.to.getTime() - 1000).toISOString());
    // ~13 days of history before the reference: 7-day features compared, 30-day ones not.
    expect(check.builtReference!.historyDays).toBeGreaterThan(12);
    expect(check.builtReference!.historyDays).toBeLessThan(14);
    expect(check.builtReference!.skippedFeatures).toContain("accuracy_30d");
    expect(check.builtReference!.skippedFeatures).not.toContain("accuracy_7d");
    expect(check.comparisons.some((c) => c.feature === "accuracy_30d")).toBe(false);
    const acc = check.comparisons.find((c) => c.feature === "accuracy_7d" && c.dimension === "all")!;
    expect(acc.status).not.toBe("insufficient");
    expect(check.reference.rows).toBeGreaterThan(1000);
    // Stationary events: no drift.
    expect(check.decision.drift).toBe(false);
  });
});

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ingestFile } from "../../features/ingest.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { formatQualityReport, qualityReport } from "../../features/quality.ts";
import { DuckStore } from "../../storage/duckdb.ts";

describe("qualityReport", () => {
  it("reports completeness, freshness, null rates and dead letters with exact counts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mastery-quality-"));
    const path = join(dir, "practice.csv");
    writeFileSync(
      path,
      [
        "event_id,student_id,timestamp,topic_id,attempts,correct_count,grade",
        "p1,s1,2026-01-05T10:00:00Z,t1,4,3,7",
        "p2,s2,2026-01-06T12:00:00Z,t1,2,2,",
        "p3,s3,2026-01-06T12:00:00Z,,2,1,",
        "p4,s3,2026-01-06T12:00:00Z,t2,2,5,",
        "p5,s3,2026-01-06T12:00:00Z,t2,0,0,",
      ].join("\n"),
    );
    const store = await DuckStore.open(":memory:");
    await ingestFile(store, path, {
      pseudonymizer: new Pseudonymizer("quality-key-0123456789"),
      now: new Date("2026-01-07T00:00:00Z"),
    });
    const r = await qualityReport(store, new Date("2026-01-07T12:00:00Z"));
    expect(r.totals).toEqual({ rawRows: 2, events: 2, deadLetterRows: 3, rejectedRows: 3 });
    const topic = r.completeness.find((c) => c.type === "practice" && c.field === "topic_id");
    expect(topic).toEqual({ type: "practice", field: "topic_id", seen: 5, missing: 1, completeness: 0.8 });
    // Newest event 2026-01-06T12:00Z, asOf 2026-01-07T12:00Z: one day.
    expect(r.freshness).toEqual([
      {
        source: "practice.csv",
        type: "practice",
        events: 2,
        lastEventAt: "2026-01-06T12:00:00.000Z",
        lastIngestedAt: "2026-01-07T00:00:00.000Z",
        secondsSinceLastEvent: 86400,
      },
    ]);
    expect(r.nullRates.find((n) => n.column === "grade")).toEqual({
      type: "practice",
      column: "grade",
      rows: 2,
      nullRate: 0.5,
    });
    expect(r.deadLetters).toEqual([
      { field: "attempts", reason: "practice.attempts must be >= 1", count: 1 },
      { field: "correct_count", reason: "practice.correct_count must be <= practice.attempts", count: 1 },
      { field: "topic_id", reason: "practice.topic_id is required", count: 1 },
    ]);
    const text = formatQualityReport(r);
    expect(text).toContain("practice.topic_id");
    expect(text).toContain("80.00%");
    store.close();
  });
});

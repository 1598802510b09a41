import { Registry } from "prom-client";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { QualityReport } from "../../features/quality.ts";
import type { AppHandle } from "../../serving/app.ts";
import { QualityMetrics } from "../../serving/qualityMetrics.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { insertDaily } from "../features/dailyEvents.ts";
import { testApp, token } from "./appFixture.ts";

/** Prometheus text -> value of the sample with exactly these labels. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");
  const head = want === "" ? `${name} ` : `${name}{${want}} `;
  const line = text.split("\n").find((l) => l.startsWith(head));
  return line === undefined ? undefined : Number(line.slice(head.length));
}

let store: DuckStore;
let h: AppHandle;
let admin: string;
const NOW = new Date("2026-02-22T00:00:00Z");

beforeAll(async () => {
  store = await DuckStore.open(":memory:");
  // lms: 10 quiz answers a day, 40 on the newest day (spike); question ids numeric until the
  // newest day, then text. cdn: 20 videos a day, none on the newest day (drop).
  await insertDaily(store, "lms", "quiz_attempt", [...Array.from({ length: 20 }, () => 10), 40], (d) => ({
    question_id: d < 20 ? "CAST(i AS VARCHAR)" : "'q' || i",
    is_correct: "true",
  }));
  await insertDaily(store, "cdn", "video", [...Array.from({ length: 20 }, () => 20), 0], () => ({
    video_id: "'v1'",
    watch_pct: "0.5",
  }));
  h = await testApp(store, {
    now: () => NOW,
    config: { rateLimit: { windowMs: 60_000, limit: 0 }, qualityMaxAgeMs: 3_600_000 },
  });
  admin = await token({ role: "admin", sub: "root" });
});

afterAll(() => store.close());

describe("data-quality gauges on /metrics", () => {
  it("exposes volume z-scores, anomaly flags, schema drift and freshness with source/type/field labels", async () => {
    // A scrape never waits for the report: the first one starts it in the background.
    const first = await request(h.app).get("/metrics").set("authorization", `Bearer ${admin}`);
    expect(first.status).toBe(200);
    await h.quality.ensureFresh();
    const res = await request(h.app).get("/metrics").set("authorization", `Bearer ${admin}`);
    expect(res.status).toBe(200);
    const t = res.text;
    // Constant baselines (MAD 0, scale sqrt(median)): (40 - 10) / sqrt(10) and (0 - 20) / sqrt(20).
    expect(sample(t, "mastery_quality_volume_zscore", { source: "lms", type: "quiz_attempt" })).toBeCloseTo(
      30 / Math.sqrt(10),
      9,
    );
    expect(sample(t, "mastery_quality_volume_zscore", { source: "cdn", type: "(all)" })).toBeCloseTo(
      -20 / Math.sqrt(20),
      9,
    );
    expect(sample(t, "mastery_quality_volume_anomaly", { source: "lms", type: "quiz_attempt" })).toBe(1);
    expect(sample(t, "mastery_quality_volume_anomaly", { source: "cdn", type: "video" })).toBe(-1);
    expect(sample(t, "mastery_quality_volume_events", { source: "cdn", type: "video" })).toBe(0);
    expect(
      sample(t, "mastery_quality_schema_drift", {
        origin: "events",
        source: "lms",
        type: "quiz_attempt",
        field: "question_id",
        change: "retyped",
      }),
    ).toBe(1);
    expect(sample(t, "mastery_quality_schema_changes", { source: "lms", type: "quiz_attempt" })).toBe(1);
    expect(sample(t, "mastery_quality_schema_changes", { source: "cdn", type: "video" })).toBeUndefined();
    // Newest lms event: 2026-02-21 08:00:39; NOW is 2026-02-22 00:00:00 -> 15 h 59 min 21 s.
    expect(sample(t, "mastery_quality_freshness_seconds", { source: "lms", type: "quiz_attempt" })).toBe(
      57_561,
    );
    expect(sample(t, "mastery_quality_null_rate", { type: "video", field: "watch_pct" })).toBe(0);
    expect(sample(t, "mastery_quality_report_timestamp_seconds")).toBe(NOW.getTime() / 1000);
    expect(sample(t, "mastery_quality_refresh_errors_total")).toBe(0);
    // No monitor loop configured: its gauges exist but no tick ran.
    expect(t).toContain("# TYPE mastery_monitor_runs_total counter");
    expect(h.monitor).toBeNull();
  });

  it("serves the cached report within max age, and new values after a refresh", async () => {
    await insertDaily(store, "cdn", "video", [...Array.from({ length: 20 }, () => 0), 20], () => ({
      video_id: "'v2'",
      watch_pct: "0.5",
    }));
    const get = async () =>
      (await request(h.app).get("/metrics").set("authorization", `Bearer ${admin}`)).text;
    expect(sample(await get(), "mastery_quality_volume_events", { source: "cdn", type: "video" })).toBe(0);
    await h.quality.refresh();
    const t = await get();
    expect(sample(t, "mastery_quality_volume_events", { source: "cdn", type: "video" })).toBe(20);
    expect(sample(t, "mastery_quality_volume_anomaly", { source: "cdn", type: "video" })).toBe(0);
  });
});

describe("QualityMetrics never makes a scrape wait", () => {
  it("serves the last gauges at once while a refresh hangs, and counts a failed one", async () => {
    const registry = new Registry();
    let release: (() => void) | undefined;
    let calls = 0;
    const m = new QualityMetrics({
      registry,
      maxAgeMs: 0,
      report: () => {
        calls++;
        return new Promise<QualityReport>((_resolve, reject) => {
          release = () => reject(new Error("budget exceeded"));
        });
      },
    });
    const t0 = performance.now();
    const text = await registry.metrics();
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(calls).toBe(1);
    expect(sample(text, "mastery_quality_refresh_errors_total")).toBe(0);
    // A second scrape while the first refresh still runs shares it (no second report).
    await registry.metrics();
    expect(calls).toBe(1);
    release!();
    await m.ensureFresh();
    await new Promise((r) => setImmediate(r));
    expect(sample(await registry.metrics(), "mastery_quality_refresh_errors_total")).toBe(1);
  });
});

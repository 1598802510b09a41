import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_DRIFT_CONFIG, type DriftConfig, parseDriftConfig } from "../../monitoring/config.ts";
import {
  checkDrift,
  compareFrames,
  DriftMonitorError,
  defaultWindows,
  saveReferenceSnapshot,
} from "../../monitoring/driftMonitor.ts";
import { applyDriftRule } from "../../monitoring/rule.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { frameOf, generateRows, insertRows, TEST_FEATURES } from "./driftData.ts";

const CFG: DriftConfig = {
  ...DEFAULT_DRIFT_CONFIG,
  features: [...TEST_FEATURES],
  rule: { minFeatures: 2, minSegments: 1, keyFeatures: ["accuracy_7d"] },
};

const REF_AT = new Date("2025-03-01T00:00:00Z");
const CUR_AT = new Date("2025-03-20T00:00:00Z");
const windows = {
  reference: {
    kind: "window" as const,
    window: { from: new Date("2025-02-20T00:00:00Z"), to: new Date("2025-03-10T00:00:00Z") },
    label: "test reference",
  },
  current: { from: new Date("2025-03-10T00:00:00Z"), to: new Date("2025-03-21T00:00:00Z") },
};

describe("drift monitor on the store", () => {
  let store: DuckStore;
  beforeEach(async () => {
    store = await DuckStore.open(":memory:");
  });
  afterEach(() => store.close());

  it("flags exactly the shifted feature in exactly the shifted topic", async () => {
    await insertRows(store, generateRows(1, 2000, "r"), REF_AT);
    await insertRows(
      store,
      generateRows(2, 2000, "c", { feature: "avg_time_per_question_7d", topic: "t3", delta: 0.6 }),
      CUR_AT,
    );
    const check = await checkDrift(store, { config: CFG, ...windows });
    const alerts = check.comparisons.filter((c) => c.status === "alert");
    expect(alerts.length).toBeGreaterThan(0);
    expect(new Set(alerts.map((c) => c.feature))).toEqual(new Set(["avg_time_per_question_7d"]));
    const topicAlerts = alerts.filter((c) => c.dimension === "topic").map((c) => c.segment);
    expect(topicAlerts).toEqual(["t3"]);
    expect(check.decision.drift).toBe(true);
    expect(check.decision.alertingSegments.map((s) => s.segment)).toContain("topic=t3");
    expect(check.decision.alertingSegments.filter((s) => s.segment.startsWith("topic="))).toEqual([
      { segment: "topic=t3", features: ["avg_time_per_question_7d"] },
    ]);
    // The t3 comparison's scaled Wasserstein is far from 0; unshifted topics' are small.
    const t3 = check.comparisons.find(
      (c) => c.dimension === "topic" && c.segment === "t3" && c.feature === "avg_time_per_question_7d",
    )!;
    const t1 = check.comparisons.find(
      (c) => c.dimension === "topic" && c.segment === "t1" && c.feature === "avg_time_per_question_7d",
    )!;
    expect(t3.wassersteinScaled!).toBeGreaterThan(0.8);
    expect(t1.wassersteinScaled!).toBeLessThan(0.2);
    expect(t3.meanCurrent! / t3.meanReference!).toBeGreaterThan(1.45);
    // Recorded in drift_checks.
    const rec = await store.one<{ n: bigint; d: boolean }>(
      "SELECT count(*) AS n, bool_or(drift) AS d FROM drift_checks",
    );
    expect(rec).toEqual({ n: 1n, d: true });
  });

  it("flags an accuracy drop in one school (a key feature) and nowhere else", async () => {
    await insertRows(store, generateRows(3, 2000, "r"), REF_AT);
    await insertRows(
      store,
      generateRows(4, 2000, "c", { feature: "accuracy_7d", school: "s2", delta: -0.3 }),
      CUR_AT,
    );
    const check = await checkDrift(store, { config: CFG, ...windows, record: false });
    const alerts = check.comparisons.filter((c) => c.status === "alert");
    expect(new Set(alerts.map((c) => c.feature))).toEqual(new Set(["accuracy_7d"]));
    expect(alerts.filter((c) => c.dimension === "school").map((c) => c.segment)).toEqual(["s2"]);
    expect(check.decision.keyFeatureAlerts).toContain("accuracy_7d@school=s2");
    expect(check.decision.drift).toBe(true);
  });

  it("reports no drift when nothing changed, and reads a stored reference snapshot", async () => {
    await insertRows(store, generateRows(5, 1500, "r"), REF_AT);
    await insertRows(store, generateRows(6, 1500, "c"), CUR_AT);
    const saved = await saveReferenceSnapshot(store, "base", windows.reference.window);
    expect(saved.rows).toBe(1500);
    const a = await checkDrift(store, { config: CFG, ...windows, record: false });
    const b = await checkDrift(store, {
      config: CFG,
      current: windows.current,
      reference: { kind: "snapshot", id: "base" },
      record: false,
    });
    expect(a.decision.drift).toBe(false);
    expect(b.decision.drift).toBe(false);
    // Same reference rows either way: identical statistics.
    expect(b.comparisons.map((c) => c.psi)).toEqual(a.comparisons.map((c) => c.psi));
    expect(b.reference.label).toBe("snapshot base");
  });

  it("derives default windows from the newest snapshot and names unknown features", async () => {
    await insertRows(store, generateRows(7, 50, "r"), REF_AT);
    await insertRows(store, generateRows(8, 50, "c"), CUR_AT);
    const w = await defaultWindows(store, CFG);
    expect(w.current.to.toISOString()).toBe("2025-03-20T00:00:01.000Z");
    expect(w.current.from.toISOString()).toBe("2025-03-13T00:00:01.000Z");
    expect(w.reference.from.toISOString()).toBe("2025-02-13T00:00:01.000Z");
    await expect(
      checkDrift(store, { config: { ...CFG, features: ["accuracy_7d", "nope_7d"] }, ...windows }),
    ).rejects.toThrow(/nope_7d/);
    await expect(
      checkDrift(store, {
        config: CFG,
        current: windows.current,
        reference: { kind: "snapshot", id: "missing" },
      }),
    ).rejects.toBeInstanceOf(DriftMonitorError);
  });
});

describe("false-alarm rate without a shift", () => {
  for (const correction of ["bonferroni", "bh"] as const) {
    it(`stays at or below alpha over 100 seeds (${correction})`, () => {
      const cfg = parseDriftConfig({
        features: [...TEST_FEATURES],
        categoricals: ["topic_id", "school_id"],
        scores: false,
        test: { correction, alpha: 0.05, minRows: 30 },
      });
      let alarms = 0;
      let rawSignificant = 0;
      for (let seed = 0; seed < 100; seed++) {
        const { comparisons } = compareFrames(
          frameOf(generateRows(1000 + seed, 300, "r")),
          frameOf(generateRows(5000 + seed, 300, "c")),
          cfg,
        );
        if (comparisons.some((c) => c.pValue <= 0.05)) rawSignificant++;
        if (applyDriftRule(comparisons, cfg).drift) alarms++;
      }
      expect(alarms / 100).toBeLessThanOrEqual(cfg.test.alpha);
      // Without the correction nearly every check would alarm: ~ 60 tests per check.
      expect(rawSignificant).toBeGreaterThan(50);
    });
  }
});

describe("config", () => {
  it("merges YAML over the defaults and names bad keys", () => {
    const c = parseDriftConfig({ psi: { alert: 0.3 }, rule: { keyFeatures: ["accuracy_30d"] } });
    expect(c.psi).toEqual({ bins: 10, warn: 0.1, alert: 0.3 });
    expect(c.rule.keyFeatures).toEqual(["accuracy_30d"]);
    expect(() => parseDriftConfig({ psi: { alret: 1 } })).toThrow(/psi.alret is not a known key/);
    expect(() => parseDriftConfig({ test: { correction: "holm" } })).toThrow(/bonferroni, bh or none/);
    expect(() => parseDriftConfig({ test: { alpha: "x" } })).toThrow(/test.alpha must be a number/);
  });
});

import { describe, expect, it } from "vitest";
import { DEFAULT_DRIFT_CONFIG, type DriftConfig } from "../../monitoring/config.ts";
import { compareFrames, featureLookbackDays } from "../../monitoring/driftMonitor.ts";
import { applyDriftRule } from "../../monitoring/rule.ts";
import { frameOf, generateRows, TEST_FEATURES } from "./driftData.ts";

const CFG: DriftConfig = {
  ...DEFAULT_DRIFT_CONFIG,
  features: [...TEST_FEATURES],
  rule: { minFeatures: 2, minSegments: 1, keyFeatures: ["accuracy_7d"] },
};

describe("drift effect floors and event sources", () => {
  it("names a new event source and leaves an unchanged mix alone", () => {
    const ref = frameOf(generateRows(11, 600, "r"));
    const cur = frameOf(generateRows(12, 600, "c"));
    ref.eventSources = new Map([
      ["quiz_attempt:lms", 5000],
      ["video:lms", 1000],
    ]);
    cur.eventSources = new Map([
      ["quiz_attempt:lms", 5020],
      ["video:lms", 990],
    ]);
    const same = applyDriftRule(compareFrames(ref, cur, CFG).comparisons, CFG);
    expect(same.drift).toBe(false);
    cur.eventSources.set("quiz_attempt:partner-app", 800);
    const { comparisons } = compareFrames(ref, cur, CFG);
    const d = applyDriftRule(comparisons, CFG);
    const es = comparisons.find((c) => c.feature === "event_source")!;
    expect(es.newCategories).toEqual(["quiz_attempt:partner-app"]);
    expect(es.status).toBe("alert");
    expect(d.drift).toBe(true);
    expect(d.reasons.join(" ")).toContain("quiz_attempt:partner-app");
  });

  it("a -0.15 accuracy drop in one topic alerts on accuracy in that topic only (Wasserstein floor)", () => {
    const ref = frameOf(generateRows(21, 3000, "r"));
    const cur = frameOf(generateRows(22, 3000, "c", { feature: "accuracy_7d", topic: "t2", delta: -0.15 }));
    const { comparisons } = compareFrames(ref, cur, CFG);
    const d = applyDriftRule(comparisons, CFG);
    // Of the topics only t2; grades (which hold t2's rows) may alert too, schools likewise.
    expect(d.alertingSegments.filter((s) => s.segment.startsWith("topic="))).toEqual([
      { segment: "topic=t2", features: ["accuracy_7d"] },
    ]);
    expect(d.alertingSegments.flatMap((s) => s.features).every((f) => f === "accuracy_7d")).toBe(true);
    const t2 = comparisons.find(
      (c) => c.dimension === "topic" && c.segment === "t2" && c.feature === "accuracy_7d",
    )!;
    // 0.15 / sd(0.15-ish clamped normal) ~ 1 sd: far above the 0.2 floor plus noise.
    expect(t2.wassersteinScaled!).toBeGreaterThan(0.7);
  });

  it("look-back of feature columns", () => {
    expect(featureLookbackDays("accuracy_30d")).toBe(30);
    expect(featureLookbackDays("attempts_7d")).toBe(7);
    expect(featureLookbackDays("days_since_last_activity")).toBe(90);
    expect(featureLookbackDays("days_since_last_activity", 7)).toBe(7);
    expect(featureLookbackDays("difficulty")).toBe(0);
  });
});

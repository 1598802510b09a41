import { describe, expect, it } from "vitest";
import { withoutNegligibleFactors } from "../../serving/recompute.ts";

describe("recompute: a rule row's immaterial factors", () => {
  // The chaos audit's case: merged sums left video_completion at 49.999... (part -5e-18), one fold at 50 (part 0).
  const merged = {
    factors: [
      { name: "recency", contribution: 0.0606 },
      { name: "accuracy", contribution: 0.0472 },
      { name: "video_completion", contribution: -2.24e-18 },
    ],
    rule: {
      factors: [
        { name: "accuracy", part: 0.106 },
        { name: "video_completion", part: -5.05e-18 },
      ],
    },
  };
  const folded = {
    factors: [
      { name: "recency", contribution: 0.0606 },
      { name: "accuracy", contribution: 0.0472 },
      { name: "hint_usage", contribution: 0 },
    ],
    rule: {
      factors: [
        { name: "accuracy", part: 0.106 },
        { name: "video_completion", part: 0 },
      ],
    },
  };

  it("drops factors within the tolerance of 0, so the two texts compare equal", () => {
    expect(withoutNegligibleFactors(merged, 1e-9)).toEqual(withoutNegligibleFactors(folded, 1e-9));
  });

  it("keeps every factor that moves the score", () => {
    const moved = {
      factors: [
        { name: "accuracy", contribution: 2e-9 },
        { name: "trend", contribution: -0.01 },
      ],
    };
    expect(withoutNegligibleFactors(moved, 1e-9)).toEqual(moved);
    expect(withoutNegligibleFactors(merged, 0)).not.toEqual(withoutNegligibleFactors(folded, 0));
  });
});

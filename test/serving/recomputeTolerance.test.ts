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

  it("compares the amounts of the factors that move the score; tied factors may be named differently", () => {
    const a = {
      factors: [
        { name: "accuracy", contribution: 0.05 },
        { name: "practice_success", contribution: 0.02 },
      ],
    };
    const tiedOtherName = {
      factors: [
        { name: "accuracy", contribution: 0.05 },
        { name: "assignment_score", contribution: 0.02 },
      ],
    };
    const moved = {
      factors: [
        { name: "accuracy", contribution: 0.05 },
        { name: "practice_success", contribution: 0.03 },
      ],
    };
    expect(withoutNegligibleFactors(a, 1e-9)).toEqual(withoutNegligibleFactors(tiedOtherName, 1e-9));
    expect(withoutNegligibleFactors(a, 1e-9)).not.toEqual(withoutNegligibleFactors(moved, 1e-9));
    expect(withoutNegligibleFactors(a, 1e-9)).toEqual({ factors: [0.05, 0.02] });
  });
});

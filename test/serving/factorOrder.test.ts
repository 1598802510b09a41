import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { explain } from "../../models/explanation.ts";
import { factorOrderer } from "../../serving/learnerState.ts";

// The batch job's factor order (serving/learnerState.ts factorOrderer, an in-place insertion sort) must be
// explain()'s order exactly: the SQL explanation text picks factors by these ranks.
const BKT = ["correct_answers", "incorrect_answers", "bkt_learn", "recent_correct_streak"];
const ELO = ["correct_answers", "incorrect_answers", "recent_correct_streak"];

function explainOrder(names: readonly string[], contributions: readonly number[]): number[] {
  const e = explain(
    0,
    names.map((name, i) => ({ name, value: 0, contribution: contributions[i]! })),
    0,
    names.length,
  );
  return e.factors.map((f) => names.indexOf(f.name));
}

describe("factorOrderer", () => {
  it("orders by |contribution| descending, then name, as explain() does (ties of |c| included)", () => {
    // Contributions drawn from a few values and their negatives, so equal magnitudes (ties) are frequent.
    const contribution = fc.constantFrom(0, 0.5, -0.5, 0.25, -0.25, 1e-9, -1e-9, 3);
    for (const names of [BKT, ELO]) {
      const o = factorOrderer(names);
      fc.assert(
        fc.property(fc.array(contribution, { minLength: names.length, maxLength: names.length }), (cs) => {
          cs.forEach((c, i) => {
            o.contributions[i] = c;
          });
          expect([...o.order()]).toEqual(explainOrder(names, cs));
        }),
        { numRuns: 500 },
      );
    }
  });

  it("breaks a tie of magnitudes by name: bkt_learn before correct_answers", () => {
    const o = factorOrderer(BKT);
    o.contributions.set([0.5, 0.1, -0.5, 0.2]);
    expect([...o.order()]).toEqual([2, 0, 3, 1]);
  });
});

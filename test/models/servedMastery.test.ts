import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../models/prng.ts";
import {
  evidenceKind,
  type PairEvidence,
  RIDGE_GRID,
  SERVED_INPUTS,
  ServedMastery,
} from "../../models/servedMastery.ts";

function pairs(n: number, seed: number): PairEvidence[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const attempts = Math.floor(rnd() * 30);
    return {
      topic: "T1",
      rule: rnd(),
      bkt: rnd(),
      elo: rnd(),
      attempts,
      correct: Math.floor(rnd() * (attempts + 1)),
      daysSinceQuiz: attempts > 0 ? rnd() * 40 : Number.POSITIVE_INFINITY,
      daysSinceAny: rnd() * 40,
    };
  });
}

describe("served mastery stack", () => {
  it("recovers the weights of a known linear label and puts no weight on unrelated inputs", () => {
    const xs = pairs(4000, 1);
    const ys = xs.map((p) => 0.1 + 0.5 * p.rule + 0.2 * p.elo);
    const m = ServedMastery.fit(xs, ys, { ridge: 1e-9 });
    const w = (name: string) => m.json.weights[SERVED_INPUTS.indexOf(name as never)]!;
    expect(w("rule_score")).toBeCloseTo(0.5, 6);
    expect(w("elo_score")).toBeCloseTo(0.2, 6);
    expect(w("bkt_p_learned")).toBeCloseTo(0, 6);
    expect(w("days_since_last")).toBeCloseTo(0, 6);
    const p = xs[7]!;
    expect(m.predict(p).score).toBeCloseTo(0.1 + 0.5 * p.rule + 0.2 * p.elo, 6);
  });

  it("reads the other kinds' evidence: practice accuracy and the assignment mean get their weights", () => {
    const rnd = mulberry32(31);
    const xs = pairs(4000, 30).map((p) => {
      const practiceAttempts = Math.floor(rnd() * 20);
      const assignments = rnd() < 0.5 ? 1 : 0;
      return {
        ...p,
        practiceAttempts,
        practiceCorrect: Math.floor(rnd() * (practiceAttempts + 1)),
        assignments,
        assignmentMean: assignments > 0 ? rnd() : Number.NaN,
      };
    });
    const acc = (p: (typeof xs)[number]) => (p.practiceCorrect + 1) / (p.practiceAttempts + 2);
    // A pair without an assignment reads the training mean of the input.
    const seen = xs.filter((p) => p.assignments > 0);
    const mean = seen.reduce((s, p) => s + p.assignmentMean, 0) / seen.length;
    const ys = xs.map(
      (p) => 0.2 + 0.5 * acc(p) + 0.3 * ((p.assignments > 0 ? p.assignmentMean : mean) - 0.5),
    );
    const m = ServedMastery.fit(xs, ys, { ridge: 1e-9 });
    const w = (name: string) => m.json.weights[SERVED_INPUTS.indexOf(name as never)]!;
    expect(w("practice_accuracy")).toBeCloseTo(0.5, 6);
    expect(w("assignment_mean")).toBeCloseTo(0.3, 6);
    expect(w("rule_score")).toBeCloseTo(0, 6);
    // No assignment: the input is imputed with the training mean (contributes 0).
    const none = { ...xs[3]!, assignments: 0, assignmentMean: Number.NaN };
    const c = m.predict(none).contributions.find((x) => x.name === "assignment_mean")!;
    expect(c.contribution).toBe(0);
  });

  it("cross-validation picks a small ridge for a clean signal and a large one for pure noise", () => {
    const xs = pairs(1000, 11);
    const clean = ServedMastery.fit(
      xs,
      xs.map((p) => 0.2 + 0.6 * p.elo),
    );
    expect(clean.json.ridge).toBe(RIDGE_GRID[0]);
    const rnd = mulberry32(12);
    const noise = ServedMastery.fit(
      xs,
      xs.map(() => rnd()),
    );
    expect(noise.json.ridge).toBeGreaterThanOrEqual(10);
  });

  it("80% intervals cover about 80% of held-out labels, and the explanation sums to the score", () => {
    const rnd = mulberry32(9);
    const noisy = (p: PairEvidence) => 0.3 + 0.4 * p.rule + (rnd() - 0.5) * 0.3;
    const train = pairs(3000, 2);
    const m = ServedMastery.fit(train, train.map(noisy));
    const test = pairs(3000, 3);
    let inside = 0;
    for (const p of test) {
      const y = noisy(p);
      const e = m.predict(p);
      if (y >= e.lo && y <= e.hi) inside++;
      const total = e.contributions.reduce((s, c) => s + c.contribution, e.base) + e.rest;
      expect(total).toBeCloseTo(e.score, 12);
      expect(e.lo).toBeLessThanOrEqual(e.score);
      expect(e.hi).toBeGreaterThanOrEqual(e.score);
    }
    // Uniform noise of width 0.3: the 10-90% residual band is 0.24 wide, so ~80% of labels fall inside.
    expect(inside / test.length).toBeGreaterThan(0.76);
    expect(inside / test.length).toBeLessThan(0.84);
  });

  it("with label attempts, intervals leave out the labels' sampling noise and cover ~80% of the target", () => {
    const rnd = mulberry32(21);
    const xs = pairs(6000, 22);
    const target = xs.map((p) => 0.2 + 0.6 * p.rule + (rnd() - 0.5) * 0.2);
    // Each label: the accuracy over 5 answers drawn with P(correct) = target.
    const labels = target.map((t) => {
      let c = 0;
      for (let k = 0; k < 5; k++) if (rnd() < t) c++;
      return c / 5;
    });
    const attempts = xs.map(() => 5);
    const cover = (m: ServedMastery) =>
      xs.filter((p, i) => {
        const e = m.predict(p);
        return target[i]! >= e.lo && target[i]! <= e.hi;
      }).length / xs.length;
    const plain = cover(ServedMastery.fit(xs, labels));
    const deconvolved = cover(ServedMastery.fit(xs, labels, { labelAttempts: attempts }));
    // Label noise (sd ~0.2) dwarfs the target's spread around the fit (sd ~0.06): plain intervals cover
    // nearly every target; without the noise they come back towards 80%.
    expect(plain).toBeGreaterThan(0.95);
    expect(deconvolved).toBeLessThan(plain);
    expect(deconvolved).toBeGreaterThan(0.6);
    expect(deconvolved).toBeLessThan(0.95);
  });

  it("missing sources fall back to the training mean, and evidence kinds follow the events", () => {
    const xs = pairs(500, 4);
    const m = ServedMastery.fit(
      xs,
      xs.map((p) => p.rule),
    );
    const none: PairEvidence = {
      topic: "T1",
      rule: Number.NaN,
      bkt: Number.NaN,
      elo: Number.NaN,
      attempts: 0,
      correct: 0,
      daysSinceQuiz: Number.POSITIVE_INFINITY,
      daysSinceAny: Number.POSITIVE_INFINITY,
    };
    const e = m.predict(none);
    expect(Number.isFinite(e.score)).toBe(true);
    expect(e.evidence).toBe("prior");
    expect(e.daysSinceLast).toBeNull();
    expect(evidenceKind({ ...none, daysSinceAny: 3 })).toBe("indirect");
    expect(evidenceKind({ ...none, attempts: 2, correct: 1, daysSinceQuiz: 1, daysSinceAny: 1 })).toBe(
      "measured",
    );
    expect(() => ServedMastery.fit(xs.slice(0, 3), [0.1, 0.2, 0.3])).toThrow(/more labelled pairs/);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildCohort,
  buildCurriculum,
  type EventSink,
  learnStep,
  pCorrect,
  pKnowItem,
  retained,
  StudentSimulator,
} from "../../models/simulation.ts";

describe("latent process formulas", () => {
  it("known answers", () => {
    // one half-life halves the distance to the floor: 0.2 + (0.8 - 0.2) / 2
    expect(retained(0.8, 0.2, 3, 3)).toBeCloseTo(0.5, 12);
    expect(retained(0.8, 0.2, 6, 3)).toBeCloseTo(0.35, 12);
    expect(retained(0.8, 0.2, 0, 3)).toBeCloseTo(0.8, 12);
    // linear operator: 0.2 + 0.25 * 0.8
    expect(learnStep(0.2, 0.25)).toBeCloseTo(0.4, 12);
    expect(pKnowItem(0.45, 0.45)).toBeCloseTo(0.5, 12);
    // 0.7 * 0.9 + 0.3 * 0.2
    expect(pCorrect(0.7, 0.2, 0.1)).toBeCloseTo(0.69, 12);
  });

  it("learning never leaves [0, 1] and never lowers knowledge; forgetting never goes below the floor", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 5, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 365, noNaN: true }),
        fc.double({ min: 0.1, max: 120, noNaN: true }),
        (k, rate, floorShare, days, halfLife) => {
          const next = learnStep(k, rate);
          const floor = k * floorShare;
          const r = retained(k, floor, days, halfLife);
          return next >= k && next <= 1 && r >= floor - 1e-12 && r <= k + 1e-12;
        },
      ),
    );
  });
});

describe("buildCurriculum", () => {
  it("prerequisites are earlier topics of the same subject (a DAG) and ranges nest", () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 300 }), (seed, nTopics) => {
        const c = buildCurriculum(seed, nTopics);
        if (c.topicIds.length !== nTopics || new Set(c.topicIds).size !== nTopics) return false;
        for (let t = 0; t < nTopics; t++) {
          for (let i = c.prereqStart[t]!; i < c.prereqStart[t + 1]!; i++) {
            const p = c.prereqList[i]!;
            if (!(p < t) || c.subjectOf[p] !== c.subjectOf[t]) return false;
          }
          if (c.questionStart[t + 1]! - c.questionStart[t]! < 8) return false;
          if (c.videoStart[t + 1]! - c.videoStart[t]! < 1) return false;
          const d = c.difficulty[t]!;
          if (!(d > 0 && d < 1) || c.chapterOf[t]! < (t > 0 ? c.chapterOf[t - 1]! : 0)) return false;
        }
        return c.subjectStart[c.subjectIds.length] === nTopics;
      }),
      { numRuns: 60 },
    );
  });

  it("120 topics make 3 subjects of 5 chapters", () => {
    const c = buildCurriculum(1, 120);
    expect(c.subjectIds).toEqual(["sub01", "sub02", "sub03"]);
    expect(c.chapterIds.length).toBe(15);
    expect(c.topicIds[41]).toBe("t0042");
  });
});

/** Records events as plain arrays for checks. */
class RecordingSink implements EventSink {
  quizzes: number[][] = [];
  other = 0;
  truths: [number, number, number][] = [];
  beginStudent(): void {}
  quiz(
    seq: number,
    topic: number,
    t: number,
    _q: number,
    correct: boolean,
    spent: number,
    attempt: number,
    hints: number,
  ) {
    this.quizzes.push([seq, topic, t, correct ? 1 : 0, spent, attempt, hints]);
  }
  video() {
    this.other++;
  }
  practice() {
    this.other++;
  }
  chatbot() {
    this.other++;
  }
  assignment() {
    this.other++;
  }
  truth(topic: number, day: number, latent: number) {
    this.truths.push([topic, day, latent]);
  }
}

describe("StudentSimulator", () => {
  const params = { seed: 3, days: 21, eventsPerDay: 4, startDayOfWeek: 0, truthEvery: 7 };

  it("a student's events do not depend on which students were simulated before (block independence)", () => {
    const curriculum = buildCurriculum(3, 40);
    const cohort = buildCohort(3, 100);
    const fresh = new RecordingSink();
    new StudentSimulator(params, curriculum, cohort).run(57, fresh);
    const reused = new StudentSimulator(params, curriculum, cohort);
    for (let s = 0; s < 57; s++) reused.run(s, new RecordingSink());
    const after = new RecordingSink();
    reused.run(57, after);
    expect(after.quizzes).toEqual(fresh.quizzes);
    expect(after.truths).toEqual(fresh.truths);
    expect(fresh.quizzes.length).toBeGreaterThan(10);
  });

  it("event times increase within a student, latents stay in [0, 1], snapshots fall on days 6, 13, 20", () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 0, max: 99 }), (seed, student) => {
        const p = { ...params, seed };
        const sim = new StudentSimulator(p, buildCurriculum(seed, 30), buildCohort(seed, 100));
        const sink = new RecordingSink();
        sim.run(student, sink);
        for (let i = 1; i < sink.quizzes.length; i++) {
          const [seqA, , tA] = sink.quizzes[i - 1]!;
          const [seqB, , tB] = sink.quizzes[i]!;
          if (!(seqB! > seqA! && tB! >= tA!)) return false;
        }
        const days = new Set(sink.truths.map((r) => r[1]));
        for (const d of days) if (![6, 13, 20].includes(d)) return false;
        return sink.truths.every(([, , v]) => v >= 0 && v <= 1);
      }),
      { numRuns: 40 },
    );
  });
});

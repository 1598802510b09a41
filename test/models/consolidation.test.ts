import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CONSOLIDATION_LR_CRITICAL,
  ConsolidationError,
  fitConsolidation,
} from "../../models/consolidation.ts";
import {
  consolidatedFloor,
  consolidatedShare,
  forgettingDays,
  KIND_QUIZ,
  type LatentEvent,
  LatentFilter,
  LatentKernel,
  type LatentParams,
} from "../../models/latentFilter.ts";
import { LATENT_TEST_PARAMS, latentEvents, PROPERTY_TOPICS, studentSequencesArb } from "./latentFixtures.ts";
import { checkPredictScore, checkPredictStudent, expectWideFoldEqualsSteps } from "./latentPathChecks.ts";
import { LATENT_STUDENT_VARIANTS } from "./latentStudentCases.ts";

/** A variant of the lean paths' model set (latentStudentCases.ts) with a consolidation share. */
function consolidating(variant: string, c: number): { name: string; model: LatentFilter } {
  const json = LATENT_STUDENT_VARIANTS.find((v) => v.name === variant)!.model.json;
  return {
    name: `${variant}, consolidation ${c}`,
    model: new LatentFilter({ ...json, params: { ...json.params, consolidation: c } }),
  };
}

/** Consolidating models: linear with a student effect, and the served defaults' shape (logistic, spread, as-of decay). */
const MODELS: readonly { name: string; model: LatentFilter }[] = [
  consolidating("student effect + learning loading", 0.12),
  consolidating("served defaults' shape", 0.08),
];

describe("consolidation (round 29): the share kept and the forgetting it leaves", () => {
  it("keeps 1 - (1 - c)^n of the gain after n events; none without consolidation or events", () => {
    expect(consolidatedShare({ consolidation: 0.1 }, 3)).toBeCloseTo(0.271, 12);
    expect(consolidatedShare({ consolidation: 0.1 }, 0)).toBe(0);
    expect(consolidatedShare({}, 25)).toBe(0);
    // dt = h: d = 0.271 + 0.729 / 2 = 0.6355, i.e. the plain forgetting of -h log2(0.6355) days.
    const p = { consolidation: 0.1, halfLifeDays: 20 };
    expect(forgettingDays(p, 20, 3)).toBeCloseTo(-20 * Math.log2(0.6355), 10);
    expect(forgettingDays({ halfLifeDays: 20 }, 20, 3)).toBe(20);
    expect(forgettingDays(p, 20, 0)).toBe(20);
    // However long the gap, the consolidated share stays: at most -h log2(phi) plain days.
    expect(forgettingDays(p, 1e6, 3)).toBeCloseTo(-20 * Math.log2(0.271), 8);
  });

  it("moves the kernel's posterior mean to f + (mean - f)(phi + (1 - phi) 2^(-dt / h)), a plateau above the floor", () => {
    const params: LatentParams = { ...LATENT_TEST_PARAMS, floor: 0.1, halfLifeDays: 20, consolidation: 0.15 };
    const k = new LatentKernel(params, 200);
    const start = k.prior(0.7);
    const m0 = k.mean(start);
    for (const [dt, n] of [
      [5, 1],
      [20, 4],
      [60, 10],
      [10_000, 10],
    ] as const) {
      const p = Float64Array.from(start);
      k.forget(p, dt, Number.NaN, n);
      const phi = 1 - 0.85 ** n;
      const want = 0.1 + (m0 - 0.1) * (phi + (1 - phi) * 2 ** (-dt / 20));
      // The prior's mass below the floor stays where it is (as without consolidation): a small, fixed part.
      expect(Math.abs(k.mean(p) - want), `dt ${dt}, n ${n}`).toBeLessThan(2e-3);
    }
    // A practised pair keeps much more after a long idle span than an unpractised one (the floor's form).
    const practised = Float64Array.from(start);
    const fresh = Float64Array.from(start);
    k.forget(practised, 10_000, Number.NaN, 10);
    k.forget(fresh, 10_000, Number.NaN, 0);
    expect(k.mean(practised)).toBeGreaterThan(0.1 + 0.75 * (m0 - 0.1));
    expect(k.mean(fresh)).toBeLessThan(0.11);
  });

  it("the as-of decay and GET /mastery's stored floor are the filter's own mean t days later", () => {
    const { model } = MODELS[0]!;
    const events: LatentEvent[] = [];
    for (let i = 0; i < 12; i++) events.push({ t: i * 2, kind: KIND_QUIZ, n: 1, k: i % 4 === 0 ? 0 : 1 });
    const s = model.init("A");
    for (const e of events) model.step(s, e, "A");
    const last = events[events.length - 1]!.t;
    const atLast = model.estimate(s, last, "A");
    expect(atLast.floor).toBeCloseTo(consolidatedFloor(model.json.params, atLast.score, 12), 15);
    expect(atLast.floor!).toBeGreaterThan(
      model.json.params.floor + 0.5 * (atLast.score - model.json.params.floor),
    );
    // Carried 40 days by the filter (no as-of decay in this model): the stored floor's exponential gives the same.
    const later = model.estimate(s, last + 40, "A");
    const decayed = atLast.floor! + (atLast.score - atLast.floor!) * 2 ** (-40 / 20);
    expect(Math.abs(later.score - decayed)).toBeLessThan(2e-3);
    // The served-defaults model decays the estimate at the last event towards the same consolidated floor.
    const m2 = MODELS[1]!.model;
    const s2 = m2.init("B");
    for (const e of events) m2.step(s2, e, "B");
    const e0 = m2.estimate(s2, last, "B");
    const e1 = m2.estimate(s2, last + 40, "B");
    expect(e1.floor).toBe(e0.floor);
    expect(e1.score).toBeCloseTo(e0.floor! + (e0.score - e0.floor!) * 2 ** (-40 / 33.8), 12);
    expect(e0.floor!).toBeGreaterThan(m2.json.params.floor);
  });

  it("without consolidation the model is rounds 4-28's: the global floor, the plain gap", () => {
    const plain = new LatentFilter({ ...MODELS[0]!.model.json, params: { ...LATENT_TEST_PARAMS } });
    const s = plain.init("A");
    for (const e of latentEvents([
      { dt: 0, kind: 0, n: 1, frac: 1 },
      { dt: 3, kind: 0, n: 1, frac: 1 },
    ]))
      plain.step(s, e, "A");
    expect(plain.estimate(s, 30, "A").floor).toBe(LATENT_TEST_PARAMS.floor);
  });
});

describe("consolidation (round 29): every path folds it the same way", () => {
  it("predictScore (the batch's lean fold) is predict's score, bit for bit", () => {
    for (const { name, model } of MODELS) checkPredictScore(model, 40, name, 90);
  });

  it("predictStudent (the wide fold of the basis parts) is the stream's step-by-step fold mixed, bit for bit", () => {
    for (const { name, model } of MODELS) checkPredictStudent(model, 20, name, 60);
  });

  it("LatentKernel.foldWide gives each basis part the bits of its own step-by-step fold", () => {
    for (const { name, model } of MODELS)
      fc.assert(
        fc.property(studentSequencesArb(PROPERTY_TOPICS, 20, 30), ({ seqs }) => {
          for (const s of seqs) expectWideFoldEqualsSteps(model, s, name);
        }),
        { numRuns: 20 },
      );
  });
});

describe("fitConsolidation (round 29): the share and the other parameters by the likelihood, kept past a likelihood-ratio test", () => {
  const logit = (p: number) => Math.log(p / (1 - p));
  // The other coordinates: (ln h, a second one), as the global fit's unconstrained vector.
  const rest0 = Float64Array.of(Math.log(60), 0);

  it("finds the maximum of a known log-likelihood surface and keeps it when the gain is significant", () => {
    // A concave surface in (logit c, ln h, z) with its maximum at c = 0.2, h = 30 d, z = 0.5, 50 nats above c = 0's.
    const ll = (c: number, r: Float64Array) =>
      c === 0
        ? -1050
        : -1000 -
          40 * (logit(c) - logit(0.2)) ** 2 -
          40 * (r[0]! - Math.log(30)) ** 2 -
          40 * (r[1]! - 0.5) ** 2;
    const res = fitConsolidation(ll, rest0);
    expect(res.chosen).toBeCloseTo(0.2, 2);
    expect(Math.exp(res.rest[0]!)).toBeCloseTo(30, 0);
    expect(res.rest[1]!).toBeCloseTo(0.5, 2);
    expect(res.logLik.none).toBe(-1050);
    expect(res.logLik.filter).toBe(-1050);
    expect(res.logLik.best).toBeGreaterThan(-1000.01);
    expect(res.evaluations).toBeLessThanOrEqual(401);
  });

  it("counts no gain the null model reaches too: an unconverged filter fit is not a consolidation", () => {
    // c changes nothing; the other coordinate's optimum (ln 30) is far from the start (ln 60) for both models.
    const ll = (c: number, r: Float64Array) =>
      -1000 - 40 * (r[0]! - Math.log(30)) ** 2 - 40 * r[1]! ** 2 - 1e-6 * c;
    const res = fitConsolidation(ll, rest0);
    expect(res.logLik.filter).toBeLessThan(-1010);
    expect(res.logLik.none).toBeGreaterThan(-1000.01);
    expect(res.chosen).toBe(0);
    expect(res.rest).toBe(rest0);
  });

  it("keeps c = 0 and the filter's own coordinates when the gain does not pass the test", () => {
    const gain = CONSOLIDATION_LR_CRITICAL / 2 - 0.1;
    const ll = (c: number, r: Float64Array) =>
      c === 0
        ? -1000 - gain
        : -1000 - (logit(c) - logit(0.3)) ** 2 - (r[0]! - Math.log(10)) ** 2 - r[1]! ** 2;
    const res = fitConsolidation(ll, rest0);
    expect(res.chosen).toBe(0);
    expect(res.rest).toBe(rest0);
    expect(res.best).toBeCloseTo(0.3, 1);
  });

  it("a property: the choice is never worse than c = 0 at the filter's own coordinates", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 0.9, noNaN: true }),
        fc.double({ min: 1, max: 300, noNaN: true }),
        fc.double({ min: -20, max: 20, noNaN: true }),
        (cStar, hStar, offset) => {
          const ll = (c: number, r: Float64Array) =>
            c === 0
              ? -500 + offset
              : -500 - 10 * (logit(c) - logit(cStar)) ** 2 - 10 * (r[0]! - Math.log(hStar)) ** 2 - r[1]! ** 2;
          const res = fitConsolidation(ll, rest0);
          const chosenLl = ll(res.chosen, res.rest);
          expect(chosenLl).toBeGreaterThanOrEqual(ll(0, rest0));
          if (res.chosen > 0)
            expect(2 * (chosenLl - ll(0, rest0))).toBeGreaterThan(CONSOLIDATION_LR_CRITICAL);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("a fixed share (the diagnostic) fits only the other coordinates and keeps the share whatever the likelihood", () => {
    // The surface's best h at c = 0.12 is 50 d; c = 0 scores higher, yet the fixed share is kept.
    const ll = (c: number, r: Float64Array) =>
      c === 0 ? -900 : -1000 - 40 * (r[0]! - Math.log(50)) ** 2 - 40 * r[1]! ** 2;
    const res = fitConsolidation(ll, rest0, { fixed: 0.12 });
    expect(res.chosen).toBe(0.12);
    expect(Math.exp(res.rest[0]!)).toBeCloseTo(50, 0);
    expect(() => fitConsolidation(ll, rest0, { fixed: 1 })).toThrow(/must be in \(0, 1\)/);
  });

  it("names the fix when it cannot start", () => {
    expect(() => fitConsolidation(() => -1, new Float64Array(0))).toThrow(ConsolidationError);
    expect(() => fitConsolidation(() => -1, Float64Array.of(Number.NaN))).toThrow(/fit the filter first/);
    expect(() => fitConsolidation(() => Number.NaN, rest0)).toThrow(/check the fit sample/);
  });
});

describe("LatentFilter.fit with consolidation (round 29)", () => {
  it("is refused with the durable-share forgetting, naming the fix", () => {
    const seqs = [] as { topic: string; events: LatentEvent[] }[];
    for (let s = 0; s < 30; s++)
      seqs.push({
        topic: "T",
        events: Array.from({ length: 6 }, (_, i) => ({
          t: i,
          kind: KIND_QUIZ,
          n: 1,
          k: (s + i) % 3 === 0 ? 0 : 1,
        })),
      });
    expect(() =>
      LatentFilter.fit(seqs, { forgetting: "durable", consolidation: "fit", maxEvaluations: 20 }),
    ).toThrow(/use forgetting "floor" with consolidation "fit"/);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_ELO_PARAMS, Elo, type EloResponses, eloRatingStep, kFactor } from "../../models/elo.ts";
import { mulberry32 } from "../../models/prng.ts";

/** Builds an EloResponses from plain rows [user, skill, item (-1 = none), correct]. */
function responses(rows: readonly (readonly [number, number, number, number])[]): EloResponses {
  const nSkills = Math.max(0, ...rows.map((r) => r[1] + 1));
  const nItems = Math.max(0, ...rows.map((r) => r[2] + 1));
  return {
    n: rows.length,
    user: Int32Array.from(rows.map((r) => r[0])),
    skill: Int32Array.from(rows.map((r) => r[1])),
    item: Int32Array.from(rows.map((r) => r[2])),
    correct: Uint8Array.from(rows.map((r) => r[3])),
    skillNames: Array.from({ length: nSkills }, (_, c) => `s${c}`),
    itemNames: Array.from({ length: nItems }, (_, i) => `i${i}`),
  };
}

function ranks(v: readonly number[]): number[] {
  const idx = v.map((_, i) => i).sort((a, b) => v[a]! - v[b]!);
  const r = new Array<number>(v.length);
  idx.forEach((i, k) => {
    r[i] = k;
  });
  return r;
}

function spearman(a: readonly number[], b: readonly number[]): number {
  const ra = ranks(a);
  const rb = ranks(b);
  const n = a.length;
  let d2 = 0;
  for (let i = 0; i < n; i++) d2 += (ra[i]! - rb[i]!) ** 2;
  return 1 - (6 * d2) / (n * (n * n - 1));
}

const HAND = { studentA: 0.4, studentB: 0.5, skillA: 0.2, itemA: 0.6, itemB: 1 };

describe("Elo", () => {
  it("updates abilities and difficulty as computed by hand (two answers, no item column)", () => {
    // Row 1: everything 0, p = 0.5, y = 1, residual 0.5: theta = 0.4*0.5 = 0.2, theta_sk = 0.2*0.5 = 0.1,
    // d = -0.6*0.5 = -0.3. Row 2: p = logistic(0.2 + 0.1 + 0.3) = logistic(0.6) = 0.6456563062257954,
    // y = 0: d -= 0.6/(1+1*1) * (0 - p) -> d = -0.3 + 0.3 * 0.6456563062257954 = -0.10630310813226138.
    const model = new Elo({ params: HAND, fitK: false }).fit(
      responses([
        [0, 0, -1, 1],
        [0, 0, -1, 0],
      ]),
    );
    expect(model.skillDifficulty[0]).toBeCloseTo(-0.10630310813226138, 14);
    expect(model.skillCount[0]).toBe(2);
    // Mean log-loss of the two online predictions: (-ln 0.5 - ln(1 - 0.64565...)) / 2.
    expect(model.trainLogloss).toBeCloseTo(0.8653175655229153, 14);

    // A new student answering the (now frozen) skill right then wrong:
    // p1 = logistic(0.10630...) = 0.5265507789810928; r = 1 - p1; theta = 0.4 r, theta_sk = 0.2 r;
    // p2 = logistic(0.6 r + 0.10630...) = 0.5963724017500627.
    const p = model.predict(
      responses([
        [7, 0, -1, 1],
        [7, 0, -1, 0],
      ]),
    );
    expect(p[0]).toBeCloseTo(0.5265507789810928, 14);
    expect(p[1]).toBeCloseTo(0.5963724017500627, 14);
  });

  it("splits an item's difficulty into its skill's difficulty plus an item offset", () => {
    // One correct answer at p = 0.5 moves both the skill and the item by -0.6 * 0.5 = -0.3.
    const model = new Elo({ params: HAND, fitK: false }).fit(responses([[0, 0, 0, 1]]));
    expect(model.skillDifficulty[0]).toBeCloseTo(-0.3, 15);
    expect(model.itemOffset[0]).toBeCloseTo(-0.3, 15);
    expect(model.itemDifficulty("i0")).toBeCloseTo(-0.6, 15);
    // An item never seen in training starts at its skill's difficulty: p = logistic(0.3).
    const unseen = responses([[0, 0, 1, 1]]);
    expect(model.predict(unseen)[0]).toBeCloseTo(1 / (1 + Math.exp(-0.3)), 14);
  });

  it("K(n) = a / (1 + b n) decreases with the number of answers", () => {
    expect(kFactor(1, 0.5, 0)).toBe(1);
    expect(kFactor(1, 0.5, 2)).toBe(0.5);
    expect(kFactor(0.8, 0.05, 20)).toBeCloseTo(0.4, 15);
    fc.assert(
      fc.property(
        fc.double({ min: 1e-3, max: 10, noNaN: true }),
        fc.double({ min: 1e-3, max: 10, noNaN: true }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 1, max: 100 }),
        (a, b, n, dn) => kFactor(a, b, n + dn) < kFactor(a, b, n),
      ),
    );
  });

  it("single-rating step matches the formula", () => {
    const s = eloRatingStep(0.5, 3, 0.2, false, 1, 0.25);
    const p = 1 / (1 + Math.exp(-0.3));
    expect(s.p).toBeCloseTo(p, 15);
    expect(s.ability).toBeCloseTo(0.5 + (1 / 1.75) * -p, 15);
    expect(s.n).toBe(4);
  });

  it("keeps every probability strictly inside (0, 1), whatever the data and K", () => {
    const row = fc.tuple(
      fc.integer({ min: 0, max: 4 }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: -1, max: 5 }),
      fc.integer({ min: 0, max: 1 }),
    );
    const param = fc.double({ min: 0, max: 50, noNaN: true });
    fc.assert(
      fc.property(
        fc.array(row, { minLength: 1, maxLength: 60 }),
        fc.array(row, { minLength: 1, maxLength: 60 }),
        fc.record({ studentA: param, studentB: param, skillA: param, itemA: param, itemB: param }),
        (train, test, params) => {
          const model = new Elo({ params, fitK: false }).fit(responses(train));
          const p = model.predict(responses(test));
          return p.every((v) => v > 0 && v < 1 && Number.isFinite(v)) && Number.isFinite(model.trainLogloss);
        },
      ),
      { numRuns: 200 },
    );
  });

  // Rasch process: 400 students (ability ~ N(0,1)) answer 24 items (difficulty spread over [-2, 2],
  // 4 skills of 6 items) in random order, P(correct) = logistic(ability - difficulty).
  function simulateRasch(seed: number): { data: EloResponses; difficulty: number[] } {
    const rand = mulberry32(seed);
    const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const nItems = 24;
    const difficulty = Array.from({ length: nItems }, () => -2 + 4 * rand());
    const rows: [number, number, number, number][] = [];
    for (let u = 0; u < 400; u++) {
      const ability = gauss();
      const order = Array.from({ length: nItems }, (_, i) => i).sort(() => rand() - 0.5);
      for (const i of order) {
        const p = 1 / (1 + Math.exp(-(ability - difficulty[i]!)));
        rows.push([u, i % 4, i, rand() < p ? 1 : 0]);
      }
    }
    return { data: responses(rows), difficulty };
  }

  it("fitting K on simulated Rasch data lowers log-loss vs the default K and recovers item difficulty order", () => {
    const { data, difficulty } = simulateRasch(42);
    const fixed = new Elo({ fitK: false }).fit(data);
    const fitted = new Elo({ maxEvaluations: 80 }).fit(data);
    expect(fixed.params).toEqual(DEFAULT_ELO_PARAMS);
    expect(fitted.trainLogloss).toBeLessThan(fixed.trainLogloss - 1e-3);
    const learned = difficulty.map((_, i) => fitted.itemDifficulty(`i${i}`)!);
    expect(spearman(learned, difficulty)).toBeGreaterThan(0.9);
  });

  it("is deterministic for a seed and reports fit progress", () => {
    const { data } = simulateRasch(7);
    const seen: number[] = [];
    const a = new Elo({ seed: 3, maxEvaluations: 30, onProgress: (p) => seen.push(p.bestLogloss) }).fit(data);
    const b = new Elo({ seed: 3, maxEvaluations: 30 }).fit(data);
    expect(a.params).toEqual(b.params);
    expect(seen.length).toBeGreaterThan(0);
    // The best value seen never gets worse from one iteration to the next.
    for (let k = 1; k < seen.length; k++) expect(seen[k]!).toBeLessThanOrEqual(seen[k - 1]!);
  });

  it("toJSON/fromJSON round trip gives identical predictions", () => {
    const { data } = simulateRasch(11);
    const model = new Elo({ maxEvaluations: 20 }).fit(data);
    const copy = Elo.fromJSON(JSON.parse(JSON.stringify(model.toJSON())));
    expect(copy.params).toEqual(model.params);
    expect(copy.trainLogloss).toBe(model.trainLogloss);
    expect(copy.itemDifficulty("i3")).toBe(model.itemDifficulty("i3"));
    const test = simulateRasch(12).data;
    expect(Array.from(copy.predict(test))).toEqual(Array.from(model.predict(test)));
  });

  it("rejects malformed model JSON with an error naming the field", () => {
    const json = new Elo({ fitK: false }).fit(responses([[0, 0, 0, 1]])).toJSON();
    expect(() => Elo.fromJSON({ ...json, kind: "bkt" })).toThrow(/kind "bkt", expected "elo"/);
    expect(() => Elo.fromJSON({ ...json, params: { ...json.params, itemB: -1 } })).toThrow(/params.itemB/);
    expect(() => Elo.fromJSON({ ...json, items: { i0: { n: 1 } } })).toThrow(/items\["i0"\].offset/);
  });

  it("predicts each row from that student's earlier rows only (never the row itself, later rows or other students)", () => {
    const model = new Elo({ maxEvaluations: 20 }).fit(simulateRasch(5).data);
    const row = fc.tuple(
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: -1, max: 23 }),
      fc.integer({ min: 0, max: 1 }),
    );
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 40 }), fc.nat(), (rows, pick) => {
        const k = pick % rows.length;
        const target = rows[k]![0];
        const p = model.predict(responses(rows))[k]!;
        // Flip the answers of row k and every later row, and of every other student's rows.
        const altered = rows.map((r, j) =>
          j >= k || r[0] !== target ? ([r[0], r[1], r[2], 1 - r[3]] as const) : r,
        );
        const q = model.predict(responses(altered))[k]!;
        // Alone: only the student's own rows up to k.
        const own = rows.filter((r, j) => j <= k && r[0] === target);
        const alone = model.predict(responses(own));
        return p === q && p === alone[alone.length - 1];
      }),
      { numRuns: 200 },
    );
  });
});

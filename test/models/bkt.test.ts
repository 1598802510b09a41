import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BKT,
  type BktParams,
  bktPredict,
  bktUpdate,
  DEFAULT_BKT_BOUNDS,
  EmScratch,
  emFitSkill,
  eStep,
  groupBySkill,
  type SkillResponses,
} from "../../models/bkt.ts";
import { mulberry32 } from "../../models/prng.ts";

/** A log of `users` x `attempts` per skill simulated from known parameters (rows grouped by user). */
function simulate(params: BktParams[], users: number, attempts: number, seed: number): SkillResponses {
  const rnd = mulberry32(seed);
  const n = users * attempts * params.length;
  const log = {
    n,
    user: new Int32Array(n),
    skill: new Int32Array(n),
    correct: new Uint8Array(n),
    skillNames: params.map((_, s) => `skill${s}`),
  };
  let i = 0;
  for (let u = 0; u < users; u++) {
    for (let s = 0; s < params.length; s++) {
      const p = params[s]!;
      let learned = rnd() < p.prior;
      for (let t = 0; t < attempts; t++) {
        const correct = learned ? rnd() >= p.slip : rnd() < p.guess;
        log.user[i] = u;
        log.skill[i] = s;
        log.correct[i] = correct ? 1 : 0;
        i++;
        learned = learned ? rnd() >= p.forget : rnd() < p.learn;
      }
    }
  }
  return log;
}

/** Log-likelihood and expected counts by summing over all 2^T hidden paths (tiny sequences only). */
function bruteForce(p: BktParams, seq: number[]) {
  const T = seq.length;
  let total = 0;
  let gammaL0 = 0;
  let xiUL = 0;
  let gammaLWrong = 0;
  for (let mask = 0; mask < 1 << T; mask++) {
    let w = 1;
    for (let t = 0; t < T; t++) {
      const L = (mask >> t) & 1;
      w *= t === 0 ? (L ? p.prior : 1 - p.prior) : transition(p, (mask >> (t - 1)) & 1, L);
      w *= L ? (seq[t] ? 1 - p.slip : p.slip) : seq[t] ? p.guess : 1 - p.guess;
    }
    total += w;
    if (mask & 1) gammaL0 += w;
    for (let t = 0; t + 1 < T; t++) if (!((mask >> t) & 1) && (mask >> (t + 1)) & 1) xiUL += w;
    for (let t = 0; t < T; t++) if ((mask >> t) & 1 && !seq[t]) gammaLWrong += w;
  }
  return {
    logLik: Math.log(total),
    gammaL0: gammaL0 / total,
    xiUL: xiUL / total,
    gammaLWrong: gammaLWrong / total,
  };
}

function transition(p: BktParams, from: number, to: number): number {
  return from ? (to ? 1 - p.forget : p.forget) : to ? p.learn : 1 - p.learn;
}

const arbParams = (forgets: boolean) =>
  fc.record({
    prior: fc.double({ min: 0.01, max: 0.99, noNaN: true }),
    learn: fc.double({ min: 0.01, max: 0.6, noNaN: true }),
    forget: forgets ? fc.double({ min: 0.01, max: 0.5, noNaN: true }) : fc.constant(0),
    guess: fc.double({ min: 0.01, max: 0.6, noNaN: true }),
    slip: fc.double({ min: 0.01, max: 0.6, noNaN: true }),
  });

function oneSequenceLog(seq: number[]): SkillResponses {
  return {
    n: seq.length,
    user: new Int32Array(seq.length),
    skill: new Int32Array(seq.length),
    correct: Uint8Array.from(seq),
    skillNames: ["s"],
  };
}

describe("BKT forward filtering", () => {
  it("matches a hand-computed two-step pass", () => {
    const p = { prior: 0.3, learn: 0.1, forget: 0, guess: 0.2, slip: 0.1 };
    // P(correct) = 0.3 * 0.9 + 0.7 * 0.2 = 0.41
    expect(bktPredict(p, p.prior)).toBeCloseTo(0.41, 12);
    // After a correct answer: posterior 0.27 / 0.41, then learning: post + (1 - post) * 0.1
    const post1 = 0.27 / 0.41;
    const pL1 = bktUpdate(p, p.prior, true);
    expect(pL1).toBeCloseTo(post1 + (1 - post1) * 0.1, 12);
    expect(pL1).toBeCloseTo(28.4 / 41, 12); // (27 + 14 * 0.1) / 41
    // Then a wrong answer: posterior pL1 * 0.1 / (pL1 * 0.1 + (1 - pL1) * 0.8)
    const post2 = (pL1 * 0.1) / (pL1 * 0.1 + (1 - pL1) * 0.8);
    expect(bktUpdate(p, pL1, 0)).toBeCloseTo(post2 + (1 - post2) * 0.1, 12);
  });

  it("forgetting moves mass from learned to unlearned", () => {
    const p = { prior: 1, learn: 0, forget: 0.25, guess: 0.2, slip: 0.1 };
    // Certain mastery, correct answer keeps posterior 1, then 25% forgetting.
    expect(bktUpdate(p, 1, true)).toBeCloseTo(0.75, 12);
  });

  it("online predict equals chaining bktUpdate per (user, skill) from the prior", () => {
    const m = new BKT();
    const p = { prior: 0.4, learn: 0.2, forget: 0.05, guess: 0.25, slip: 0.15 };
    m.skills.set("a", { ...p, logLikelihood: 0, n: 1, iterations: 1, restart: 0 });
    const log = {
      n: 5,
      user: Int32Array.from([0, 0, 0, 1, 1]),
      skill: Int32Array.from([0, 0, 0, 0, 0]),
      correct: Uint8Array.from([1, 0, 1, 1, 1]),
      skillNames: ["a"],
    };
    const out = m.predict(log);
    let pL = p.prior;
    for (let i = 0; i < 3; i++) {
      expect(out[i]).toBeCloseTo(bktPredict(p, pL), 14);
      pL = bktUpdate(p, pL, log.correct[i]!);
    }
    expect(out[3]).toBeCloseTo(bktPredict(p, p.prior), 14);
  });
});

describe("BKT filtering after a long streak", () => {
  // Independent reference: the same filter on the log-odds log(P(L) / P(U)), which never saturates.
  const logOddsFilter = (p: BktParams, answers: number[]): number[] => {
    const sig = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
    let lam = Math.log(p.prior / (1 - p.prior));
    const preds: number[] = [];
    for (const a of answers) {
      preds.push(sig(lam) * (1 - p.slip) + sig(-lam) * p.guess);
      lam += a === 1 ? Math.log((1 - p.slip) / p.guess) : Math.log(p.slip / (1 - p.guess));
      // forget = 0: P(L') = P(L) + P(U) learn, P(U') = P(U) (1 - learn)
      const k = sig(lam) + sig(-lam) * p.learn;
      lam =
        Math.log(k) -
        (Math.log(1 - p.learn) + (lam >= 0 ? -lam - Math.log1p(Math.exp(-lam)) : -Math.log1p(Math.exp(lam))));
    }
    return preds;
  };

  it("wrong answers still lower P(L) after 60 correct ones (P(U) below 1e-16 is kept)", () => {
    const p = { prior: 0.5, learn: 0.2, forget: 0, guess: 0.2, slip: 0.001 };
    const answers = [...Array(60).fill(1), ...Array(25).fill(0)] as number[];
    const m = new BKT();
    m.skills.set("a", { ...p, logLikelihood: 0, n: 1, iterations: 1, restart: 0 });
    const out = m.predict({
      n: answers.length,
      user: new Int32Array(answers.length),
      skill: new Int32Array(answers.length),
      correct: Uint8Array.from(answers),
      skillNames: ["a"],
    });
    const ref = logOddsFilter(p, answers);
    for (let i = 0; i < answers.length; i++) expect(Math.abs(out[i]! - ref[i]!)).toBeLessThan(1e-12);
    // After the streak P(correct) is 1 - slip; 25 wrong answers bring P(L) down to the learn rate
    // (each wrong answer leaves P(L) ~ 3e-4, then 20% learn): the fixed point pL = 0.20025 gives
    // P(correct) = 0.20025 * 0.999 + 0.79975 * 0.2 = 0.36000.
    expect(out[60]).toBeCloseTo(0.999, 12);
    expect(out[answers.length - 1]!).toBeCloseTo(0.36, 4);
    // A scalar P(L) would have rounded to exactly 1 and stayed there: bktUpdate shows the saturation.
    let pL = p.prior;
    for (const a of answers) pL = bktUpdate(p, pL, a);
    expect(pL).toBe(1);
  });
});

describe("BKT E-step", () => {
  it("log-likelihood and expected counts equal brute-force sums over hidden paths", () => {
    fc.assert(
      fc.property(
        arbParams(true),
        fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 1, maxLength: 7 }),
        (p, seq) => {
          const data = groupBySkill(oneSequenceLog(seq));
          const acc = new Float64Array(10);
          eStep(
            data,
            0,
            1,
            Float64Array.from([p.prior, p.learn, p.forget, p.guess, p.slip]),
            new EmScratch(4),
            acc,
          );
          const bf = bruteForce(p, seq);
          expect(acc[0]).toBeCloseTo(bf.logLik, 10);
          expect(acc[1]).toBeCloseTo(bf.gammaL0, 10);
          expect(acc[2]).toBeCloseTo(bf.xiUL, 10);
          expect(acc[7]).toBeCloseTo(bf.gammaLWrong, 10);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("stays finite on a long run of one outcome after another (underflow guard)", () => {
    const seq = [...new Array(400).fill(1), ...new Array(900).fill(0), ...new Array(50).fill(1)];
    const data = groupBySkill(oneSequenceLog(seq));
    const acc = new Float64Array(10);
    eStep(data, 0, 1, Float64Array.from([0.136, 0.078, 0, 0.341, 0.031]), new EmScratch(), acc);
    for (const v of acc) expect(Number.isFinite(v)).toBe(true);
  });
});

describe("BKT EM", () => {
  it("never decreases the log-likelihood", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 1, maxLength: 12 }), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.integer({ min: 0, max: 1000 }),
        (forgets, seqs, seed) => {
          const rows = seqs.flatMap((s, u) => s.map((c) => [u, c] as const));
          const log = {
            n: rows.length,
            user: Int32Array.from(rows.map((r) => r[0])),
            skill: new Int32Array(rows.length),
            correct: Uint8Array.from(rows.map((r) => r[1])),
            skillNames: ["s"],
          };
          const rnd = mulberry32(seed);
          const start = {
            prior: 0.05 + 0.9 * rnd(),
            learn: 0.4 * rnd() + 0.01,
            forget: forgets ? 0.5 * rnd() + 0.01 : 0,
            guess: 0.4 * rnd() + 0.01,
            slip: 0.3 * rnd() + 0.01,
          };
          const trace: number[] = [];
          emFitSkill(
            groupBySkill(log),
            0,
            start,
            { forgets, maxIter: 30, tol: 0, bounds: { ...DEFAULT_BKT_BOUNDS, maxGuess: 0.5, maxSlip: 0.5 } },
            new EmScratch(),
            trace,
          );
          for (let i = 1; i < trace.length; i++)
            expect(trace[i]!).toBeGreaterThanOrEqual(trace[i - 1]! - 1e-9);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("recovers known parameters from 200 students x 20 attempts", () => {
    const truth = { prior: 0.3, learn: 0.15, forget: 0, guess: 0.2, slip: 0.1 };
    const log = simulate([truth, truth], 200, 20, 7);
    const m = new BKT({ restarts: 5, seed: 3 }).fit(log);
    for (const name of ["skill0", "skill1"]) {
      const f = m.skills.get(name)!;
      expect(Math.abs(f.prior - truth.prior)).toBeLessThan(0.03);
      expect(Math.abs(f.learn - truth.learn)).toBeLessThan(0.03);
      expect(Math.abs(f.guess - truth.guess)).toBeLessThan(0.03);
      expect(Math.abs(f.slip - truth.slip)).toBeLessThan(0.03);
      expect(f.forget).toBe(0);
    }
  });

  it("same seed gives an identical model; another seed starts elsewhere", () => {
    const log = simulate([{ prior: 0.5, learn: 0.1, forget: 0.05, guess: 0.25, slip: 0.1 }], 30, 10, 11);
    const a = new BKT({ forgets: true, restarts: 3, seed: 5, maxIter: 5 }).fit(log).toJSON();
    const b = new BKT({ forgets: true, restarts: 3, seed: 5, maxIter: 5 }).fit(log).toJSON();
    const c = new BKT({ forgets: true, restarts: 3, seed: 6, maxIter: 5 }).fit(log).toJSON();
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(c));
  });

  it("respects guess/slip bounds", () => {
    // Answers mostly wrong at the start, mostly right later: a degenerate fit would want a high guess.
    const log = simulate([{ prior: 0.1, learn: 0.05, forget: 0, guess: 0.6, slip: 0.4 }], 50, 15, 2);
    const m = new BKT({ restarts: 3, bounds: { ...DEFAULT_BKT_BOUNDS, maxGuess: 0.3, maxSlip: 0.3 } }).fit(
      log,
    );
    const f = m.skills.get("skill0")!;
    expect(f.guess).toBeLessThanOrEqual(0.3);
    expect(f.slip).toBeLessThanOrEqual(0.3);
  });
});

describe("BKT model", () => {
  it("round-trips through JSON and predicts the same", () => {
    const log = simulate([{ prior: 0.4, learn: 0.2, forget: 0, guess: 0.2, slip: 0.1 }], 20, 8, 4);
    const m = new BKT({ restarts: 2 }).fit(log);
    const back = BKT.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
    expect(Array.from(back.predict(log))).toEqual(Array.from(m.predict(log)));
    expect(back.fallback).toEqual(m.fallback);
  });

  it("falls back to the mean of the fitted skills' parameters for an unseen skill", () => {
    const m = new BKT();
    m.skills.set("a", {
      prior: 0.2,
      learn: 0.1,
      forget: 0,
      guess: 0.1,
      slip: 0.1,
      logLikelihood: 0,
      n: 1,
      iterations: 1,
      restart: 0,
    });
    m.skills.set("b", {
      prior: 0.6,
      learn: 0.3,
      forget: 0,
      guess: 0.3,
      slip: 0.2,
      logLikelihood: 0,
      n: 1,
      iterations: 1,
      restart: 0,
    });
    m.setFits(
      {
        skillNames: ["a", "b"],
        obs: new Uint8Array(2),
        seqStart: Int32Array.from([0, 1, 2]),
        skillSeq: Int32Array.from([0, 1, 2]),
      },
      [m.skills.get("a"), m.skills.get("b")],
    );
    expect(m.fallback.prior).toBeCloseTo(0.4, 12);
    expect(m.fallback.learn).toBeCloseTo(0.2, 12);
    const log = {
      n: 1,
      user: Int32Array.from([0]),
      skill: Int32Array.from([0]),
      correct: Uint8Array.from([1]),
      skillNames: ["never-seen"],
    };
    // 0.4 * (1 - 0.15) + 0.6 * 0.2
    expect(m.predict(log)[0]).toBeCloseTo(0.46, 12);
  });

  it("never peeks: flipping row k's label leaves predictions for rows <= k unchanged", () => {
    const m = new BKT();
    m.skills.set("a", {
      prior: 0.3,
      learn: 0.2,
      forget: 0.1,
      guess: 0.2,
      slip: 0.1,
      logLikelihood: 0,
      n: 1,
      iterations: 1,
      restart: 0,
    });
    m.skills.set("b", {
      prior: 0.6,
      learn: 0.1,
      forget: 0,
      guess: 0.3,
      slip: 0.2,
      logLikelihood: 0,
      n: 1,
      iterations: 1,
      restart: 0,
    });
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 3 }),
            fc.integer({ min: 0, max: 2 }),
            fc.integer({ min: 0, max: 1 }),
          ),
          {
            minLength: 1,
            maxLength: 40,
          },
        ),
        fc.nat(),
        (rows, kSeed) => {
          rows.sort((x, y) => x[0] - y[0]); // the loader groups rows by user
          const log = {
            n: rows.length,
            user: Int32Array.from(rows.map((r) => r[0])),
            skill: Int32Array.from(rows.map((r) => r[1])),
            correct: Uint8Array.from(rows.map((r) => r[2])),
            skillNames: ["a", "b", "unseen"],
          };
          const k = kSeed % rows.length;
          const before = m.predict(log);
          log.correct[k] = 1 - log.correct[k]!;
          const after = m.predict(log);
          for (let i = 0; i <= k; i++) expect(after[i]).toBe(before[i]);
          // Rows of other users or other skills are unaffected too.
          for (let i = k + 1; i < rows.length; i++)
            if (log.user[i] !== log.user[k] || log.skill[i] !== log.skill[k])
              expect(after[i]).toBe(before[i]);
        },
      ),
    );
  });
});

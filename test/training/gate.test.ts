import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_GATE, type GateConfig, promotionGate } from "../../training/gate.ts";

const y = [0, 0, 1, 1];
// Hand-computed (10 equal-width ECE bins):
// champion  p = .1 .6 .4 .9: AUC = 3/4 (0.4 < 0.6 is the one mis-ordered pair);
//   log-loss = (2 ln(1/.9) + 2 ln(1/.4)) / 4 = 0.510826; ECE = (.1 + .6 + .6 + .1) / 4 = 0.35
// challenger p = .1 .3 .7 .9: AUC = 1; log-loss = (2 ln(1/.9) + 2 ln(1/.7)) / 4 = 0.231018; ECE = (.1+.3+.3+.1)/4 = 0.2
const champion = [0.1, 0.6, 0.4, 0.9];
const challenger = [0.1, 0.3, 0.7, 0.9];
const loose: GateConfig = { ...DEFAULT_GATE, minGroupSize: 1 };

describe("promotionGate", () => {
  it("accepts a better challenger, with the hand-computed AUC, log-loss and ECE", () => {
    const d = promotionGate({ y, champion, challenger }, loose);
    expect(d.pass).toBe(true);
    expect(d.champion.auc).toBe(0.75);
    expect(d.challenger.auc).toBe(1);
    expect(d.champion.logloss).toBeCloseTo((2 * Math.log(1 / 0.9) + 2 * Math.log(1 / 0.4)) / 4, 12);
    expect(d.challenger.logloss).toBeCloseTo((2 * Math.log(1 / 0.9) + 2 * Math.log(1 / 0.7)) / 4, 12);
    expect(d.champion.ece).toBeCloseTo(0.35, 12);
    expect(d.challenger.ece).toBeCloseTo(0.2, 12);
    const auc = d.checks.find((c) => c.name === "auc")!;
    expect(auc.delta).toBe(0.25);
    expect(auc.reason).toBe("AUC 1.0000 vs champion 0.7500 (+0.2500); meets the required gain of +0.002");
    expect(d.summary).toBe("PASS: challenger beats champion on auc, logloss, ece, group_ece");
  });

  it("refuses a worse challenger and says why for each check", () => {
    const d = promotionGate({ y, champion: challenger, challenger: champion }, loose);
    expect(d.pass).toBe(false);
    expect(d.checks.map((c) => [c.name, c.pass])).toEqual([
      ["auc", false],
      ["logloss", false],
      ["ece", false],
      ["group_ece", true],
    ]);
    expect(d.checks[0]!.reason).toBe(
      "AUC 0.7500 vs champion 1.0000 (-0.2500); misses the required gain of +0.002",
    );
    expect(d.checks[2]!.reason).toMatch(
      /ECE 0\.3500 vs champion 0\.2000 \(\+0\.1500\); exceeds the allowed increase of 0\.005/,
    );
    expect(d.summary).toMatch(/^FAIL: auc, logloss, ece \(/);
  });

  it("applies the margins: a gain smaller than m_auc fails even though the challenger is better", () => {
    const d = promotionGate({ y, champion, challenger }, { ...loose, minAucGain: 0.3 });
    expect(d.checks.find((c) => c.name === "auc")!.pass).toBe(false);
    expect(d.checks.find((c) => c.name === "logloss")!.pass).toBe(true);
    expect(d.pass).toBe(false);
  });

  it("fails the group check when one school is badly calibrated, skips and reports small groups", () => {
    // Schools A and B, 400 rows each, calibrated champion p; labels from a low-discrepancy sequence
    // so the observed rate in each bin matches p. The challenger keeps A but distorts B to p^0.3.
    const n = 400;
    const ys: number[] = [];
    const pc: number[] = [];
    const pn: number[] = [];
    const school: string[] = [];
    for (const s of ["A", "B"]) {
      for (let i = 0; i < n; i++) {
        const p = (i + 0.5) / n;
        const u = (i * 0.6180339887498949) % 1;
        ys.push(u < p ? 1 : 0);
        pc.push(p);
        pn.push(s === "B" ? p ** 0.3 : p);
        school.push(s);
      }
    }
    for (let i = 0; i < 50; i++) {
      ys.push(i % 2);
      pc.push(0.5);
      pn.push(0.5);
      school.push("C");
    }
    const d = promotionGate(
      { y: ys, champion: pc, challenger: pn, groups: [{ column: "school", values: school }] },
      {
        ...DEFAULT_GATE,
        minAucGain: -1,
        minLoglossGain: -1,
        maxEceIncrease: 1,
        minGroupSize: 100,
      },
    );
    const byGroup = Object.fromEntries(d.groups.map((g) => [g.group, g]));
    expect(byGroup.A!.pass).toBe(true);
    expect(byGroup.A!.delta).toBe(0);
    expect(byGroup.B!.pass).toBe(false);
    expect(byGroup.B!.challengerEce).toBeGreaterThan(0.15);
    expect(byGroup.B!.championEce).toBeLessThan(0.03);
    expect(d.skippedGroups).toEqual([{ column: "school", group: "C", n: 50 }]);
    const g = d.checks.find((c) => c.name === "group_ece")!;
    expect(g.pass).toBe(false);
    expect(g.reason).toMatch(/^ECE worse by more than 0\.02 in school=B \(/);
    expect(g.reason).toMatch(/1 group\(s\) below 100 rows skipped$/);
    expect(d.pass).toBe(false);
    expect(d.summary).toBe(`FAIL: group_ece (${g.reason})`);
  });

  it("a challenger identical to the champion never passes a positive margin (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), fc.double({ min: 0.01, max: 0.99, noNaN: true })), {
          minLength: 4,
          maxLength: 60,
        }),
        (rows) => {
          const ys = rows.map((r) => r[0]);
          const p = rows.map((r) => r[1]);
          const d = promotionGate({ y: ys, champion: p, challenger: p }, loose);
          return !d.pass && d.checks.find((c) => c.name === "ece")!.pass;
        },
      ),
    );
  });

  it("rejects prediction arrays of the wrong length, naming both counts", () => {
    expect(() => promotionGate({ y, champion, challenger: [0.5] })).toThrow(
      /4 labels but champion has 4 and challenger 1/,
    );
  });
});

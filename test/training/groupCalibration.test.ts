/**
 * Group calibration: hand-computed ECE per group, the min-group-size cut, ordering, and the CSV edge.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ece } from "../../models/metrics.ts";
import {
  denseIds,
  formatCalibrationTable,
  GroupCalibrationError,
  groupCalibration,
  readPredictionsCsv,
} from "../../training/groupCalibration.ts";

describe("groupCalibration", () => {
  // School A: 4 rows predicted 0.75, 3 correct -> perfectly calibrated, ECE 0.
  // School B: 4 rows predicted 0.25 (bin 2), all correct -> ECE |1 - 0.25| = 0.75.
  // School C: 1 row -> below minGroupSize 2, skipped.
  // Overall (bins of 0.1): bin 7: 4 rows, mean 0.75, observed 0.75; bin 2: 4 rows, mean 0.25, observed 1;
  // bin 9: 1 row p 0.95 y 0 -> |0 - 0.95|. ECE = (0 + 4 * 0.75 + 0.95) / 9 = 3.95 / 9.
  const y = [1, 1, 1, 0, 1, 1, 1, 1, 0];
  const p = [0.75, 0.75, 0.75, 0.75, 0.25, 0.25, 0.25, 0.25, 0.95];
  const school = denseIds(["A", "A", "A", "A", "B", "B", "B", "B", "C"]);

  it("reports hand-computed ECE per group and overall, worst group first, small groups skipped", () => {
    const r = groupCalibration(y, p, [{ name: "school", ...school }], { minGroupSize: 2 });
    expect(r.overall.n).toBe(9);
    expect(r.overall.ece).toBeCloseTo(3.95 / 9, 12);
    const c = r.columns[0]!;
    expect(c.nGroups).toBe(3);
    expect(c.groups.map((g) => g.group)).toEqual(["B", "A"]);
    expect(c.groups[0]!.ece).toBeCloseTo(0.75, 12);
    expect(c.groups[1]!.ece).toBeCloseTo(0, 12);
    expect(c.groups[1]!.observedRate).toBeCloseTo(0.75, 12);
    expect(c.skipped).toEqual({ groups: 1, rows: 1 });
    expect(c.weightedEce).toBeCloseTo(0.375, 12);
    expect(c.maxEce).toBeCloseTo(0.75, 12);
    const bin = c.groups[0]!.bins[2]!;
    expect([bin.count, bin.meanPredicted, bin.observedRate]).toEqual([4, 0.25, 1]);
  });

  it("with minGroupSize 1 every group is reported and its ECE equals ece() on its rows", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 3 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean()),
          {
            minLength: 1,
            maxLength: 60,
          },
        ),
        (rows) => {
          const ids = rows.map((r) => r[0]);
          const pp = rows.map((r) => r[1]);
          const yy = rows.map((r) => (r[2] ? 1 : 0));
          const rep = groupCalibration(yy, pp, [{ name: "g", ids, labels: ["0", "1", "2", "3"] }], {
            minGroupSize: 1,
          });
          const col = rep.columns[0]!;
          expect(col.groups.reduce((s, g) => s + g.n, 0)).toBe(rows.length);
          for (const g of col.groups) {
            const sel = rows.map((_, i) => i).filter((i) => String(ids[i]) === g.group);
            expect(g.ece).toBeCloseTo(
              ece(
                sel.map((i) => yy[i]!),
                sel.map((i) => pp[i]!),
              ),
              12,
            );
          }
        },
      ),
    );
  });

  it("rejects probabilities outside [0, 1] and non-binary labels with the row named", () => {
    expect(() => groupCalibration([1], [1.5], [])).toThrow(/prediction 0 is 1.5/);
    expect(() => groupCalibration([2], [0.5], [])).toThrow(GroupCalibrationError);
  });

  it("reads a scored CSV with school/grade/topic columns and prints a table", () => {
    const dir = mkdtempSync(join(tmpdir(), "groupcal-"));
    const file = join(dir, "scored.csv");
    const lines = ["school_id,grade,topic_id,is_correct,p"];
    y.forEach((v, i) => {
      lines.push(`${school.labels[school.ids[i]!]},${i % 2 === 0 ? 7 : 8},t${i % 3},${v},${p[i]}`);
    });
    writeFileSync(file, `${lines.join("\n")}\n`);
    const read = readPredictionsCsv(file, {
      label: "is_correct",
      score: "p",
      groups: ["school_id", "grade", "topic_id"],
    });
    const r = groupCalibration(read.y, read.p, read.columns, { minGroupSize: 2 });
    expect(r.columns.map((c) => c.column)).toEqual(["school_id", "grade", "topic_id"]);
    expect(r.columns[0]!.groups[0]!.ece).toBeCloseTo(0.75, 12);
    expect(r.columns[1]!.groups.map((g) => g.n).sort()).toEqual([4, 5]);
    const text = formatCalibrationTable(r);
    expect(text).toContain("by school_id: 2 of 3 groups with n >= 2 (skipped 1 groups, 1 rows)");
    expect(text).toContain("ECE=0.4389");
    expect(() => readPredictionsCsv(file, { label: "nope", score: "p", groups: [] })).toThrow(
      /no column "nope"/,
    );
  });

  it("reads true/false labels like 1/0, and reports unusable rows by reason with their lines", () => {
    const dir = mkdtempSync(join(tmpdir(), "groupcal-"));
    const file = join(dir, "scored.csv");
    const rows = ["y,p", "true,0.9", "false,0.2", "yes,0.7", "incorrect,0.1", "1,1.5", "maybe,0.5"];
    writeFileSync(file, `${rows.join("\n")}\n`);
    const spec = { label: "y", score: "p", groups: [] };
    expect(() => readPredictionsCsv(file, spec)).toThrow(
      /read 6 rows, used 4, skipped 2 \(33\.3%\)\n.*"p" \(score\) is not a probability in \[0, 1\]: line 6 "1\.5"\n.*"y" \(label\) is not a label .*: line 7 "maybe"/s,
    );
    const read = readPredictionsCsv(file, spec, { allowSkip: true });
    expect(Array.from(read.y)).toEqual([1, 0, 1, 0]);
    expect(Array.from(read.p)).toEqual([0.9, 0.2, 0.7, 0.1]);
  });
});

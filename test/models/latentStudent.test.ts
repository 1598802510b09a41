import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { scoreStudentLatent } from "../../models/latentStudent.ts";
import {
  digestNumbers,
  LATENT_STUDENT_OPTIONS,
  LATENT_STUDENT_VARIANTS,
  latentStudentCases,
  latentStudentNumbers,
} from "./latentStudentCases.ts";

// Digests of the same cases computed by the code before fold26's optimisations (main 56ebe82).
const expected = JSON.parse(
  readFileSync(join(import.meta.dirname, "fixtures", "latentStudentDigests.json"), "utf8"),
) as Record<string, Record<string, string>>;

describe("scoreStudentLatent is bit for bit the scoring before the optimisations (fold26)", () => {
  const cases = latentStudentCases(60, 2026);
  for (const { name, model } of LATENT_STUDENT_VARIANTS)
    it(`${name}: every estimate, offset and offset sd has the same bits`, () => {
      for (const [label, opts] of Object.entries(LATENT_STUDENT_OPTIONS)) {
        const xs: number[] = [];
        for (const c of cases)
          xs.push(
            ...latentStudentNumbers(scoreStudentLatent(model, c.sequences, c.priorTopics, c.asOfDays, opts)),
          );
        expect({ label, digest: digestNumbers(xs) }).toEqual({ label, digest: expected[name]?.[label] });
      }
    });

  it("the cases exercise the widening, the offsets and every variant (the digests differ)", () => {
    const all = Object.values(expected).flatMap((o) => Object.values(o));
    // "raw" and "no widening" agree only without a student effect (nothing to widen).
    expect(new Set(all).size).toBe(all.length - 1);
    const m = LATENT_STUDENT_VARIANTS[2]!.model;
    const r = cases.map((c) => scoreStudentLatent(m, c.sequences, c.priorTopics, c.asOfDays));
    expect(r.filter((x) => x.offsetSd > 0).length).toBeGreaterThan(30);
    expect(r.filter((x) => x.priors.length > 0).length).toBeGreaterThan(5);
    expect(new Set(r.map((x) => x.offset)).size).toBeGreaterThan(30);
  });
});

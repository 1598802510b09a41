/**
 * Writes test/models/fixtures/latentStudentDigests.json: each (model variant, options) case's digest of
 * scoreStudentLatent's numbers over the seeded students of latentStudentCases.ts. Run it only on the code the
 * optimised paths must match bit for bit (main 56ebe82, before fold26), e.g. from a detached worktree of it:
 *
 *   npx tsx test/models/latentStudentDigests.gen.ts
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { scoreStudentLatent } from "../../models/latentStudent.ts";
import {
  digestNumbers,
  LATENT_STUDENT_OPTIONS,
  LATENT_STUDENT_VARIANTS,
  latentStudentCases,
  latentStudentNumbers,
} from "./latentStudentCases.ts";

const cases = latentStudentCases(60, 2026);
const out: Record<string, Record<string, string>> = {};
for (const { name, model } of LATENT_STUDENT_VARIANTS) {
  out[name] = {};
  for (const [label, opts] of Object.entries(LATENT_STUDENT_OPTIONS)) {
    const xs: number[] = [];
    for (const c of cases)
      xs.push(
        ...latentStudentNumbers(scoreStudentLatent(model, c.sequences, c.priorTopics, c.asOfDays, opts)),
      );
    out[name][label] = digestNumbers(xs);
  }
}
writeFileSync(
  join(import.meta.dirname, "fixtures", "latentStudentDigests.json"),
  `${JSON.stringify(out, null, 2)}\n`,
);

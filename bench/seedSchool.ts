import type { GenerateOptions } from "../features/synthetic/generate.ts";

/**
 * The school the batch benches generate: the seed's scale per student (120 topics, 30 days from
 * 2026-09-01, 3.4 events a day), so 1M events is about 10,000 students and 10M about 100,000. One
 * definition, so the pipeline, incremental, BKT/Elo, generator and encryption figures are comparable.
 */
export function seedSchool(
  students: number,
  outDir: string,
  over: Partial<GenerateOptions> = {},
): GenerateOptions {
  return {
    students,
    topics: 120,
    days: 30,
    seed: 1,
    start: "2026-09-01",
    eventsPerDay: 3.4,
    truthEvery: 7,
    outDir,
    ...over,
  };
}

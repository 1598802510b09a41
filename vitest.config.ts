import { configDefaults, defineConfig } from "vitest/config";
import { scaledTimeout } from "./test/deadline.ts";

/**
 * Two tiers, chosen by file name only (no hand-kept list):
 * - unit: `test/**\/*.test.ts` except `*.int.test.ts` — pure or in-process (DuckDB :memory: is fine), no
 *   services, no browser, no child processes, each file well under ~5 s. `npm run test:unit`.
 * - int: `test/**\/*.int.test.ts` — PostgreSQL / Redis / NATS, Chromium, CLI or server child processes,
 *   or longer than ~5 s. `npm run test:int`.
 */
const INT = "test/**/*.int.test.ts";
// Default deadlines for a quiet machine, stretched by the run queue per core (test/deadline.ts).
const DEADLINE = scaledTimeout(60_000);

export default defineConfig({
  test: {
    testTimeout: DEADLINE,
    hookTimeout: DEADLINE,
    pool: "forks",
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/**/*.test.ts"], exclude: [...configDefaults.exclude, INT] },
      },
      {
        extends: true,
        test: { name: "int", include: [INT] },
      },
    ],
  },
});

import { configDefaults, defineConfig } from "vitest/config";

/**
 * Two tiers, chosen by file name only (no hand-kept list):
 * - unit: `test/**\/*.test.ts` except `*.int.test.ts` — pure or in-process (DuckDB :memory: is fine), no
 *   services, no browser, no child processes, each file well under ~5 s. `npm run test:unit`.
 * - int: `test/**\/*.int.test.ts` — PostgreSQL / Redis / NATS, Chromium, CLI or server child processes,
 *   or longer than ~5 s. `npm run test:int`.
 */
const INT = "test/**/*.int.test.ts";

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
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

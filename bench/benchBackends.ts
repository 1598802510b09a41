import { openServingBackends } from "../serving/servingBackends.ts";
import { streamModels } from "../serving/updater.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { BENCH_PG_URL, BENCH_REDIS_URL } from "./benchEnv.ts";

/**
 * A bench's serving backends on PostgreSQL + Redis beside its DuckDB file: the scores in PostgreSQL schema `name`,
 * the cache and stream state under Redis prefix `name` (a bench's own, so helpers can share the services), the
 * stream's default models. `invalidatedCacheTtlMs` as openServingBackends takes it (its default when omitted).
 */
export function openBenchPgBackends(
  store: DuckStore,
  name: string,
  opts: { invalidatedCacheTtlMs?: number } = {},
): ReturnType<typeof openServingBackends> {
  return openServingBackends({
    duck: store,
    stores: {
      dbPath: store.path,
      duck: store,
      pgUrl: BENCH_PG_URL,
      pgSchema: name,
      redisUrl: BENCH_REDIS_URL,
      redisPrefix: name,
    },
    models: streamModels({}),
    ...opts,
  });
}

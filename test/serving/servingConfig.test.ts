import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_SERVING_CONFIG, loadServingConfig, servingDuckOptions } from "../../serving/app.ts";
import { DEFAULT_SOURCE_ORDER } from "../../serving/masteryView.ts";
import { INVALIDATED_CACHE_TTL_MS } from "../../serving/servingBackends.ts";
import { DuckStore } from "../../storage/duckdb.ts";

describe("loadServingConfig: pool and cache sizing", () => {
  const write = (yaml: string) => {
    const p = join(mkdtempSync(join(tmpdir(), "serving-config-")), "serving.yaml");
    writeFileSync(p, yaml);
    return p;
  };

  it("reads cache_max_mb (MiB -> bytes), read_connections and pg_pool_max", () => {
    const c = loadServingConfig(
      write("cache_max_mb: 8\nhistory_cache_max_mb: 0.5\nread_connections: 2\npg_pool_max: 25\n"),
    );
    expect(c.cacheMaxBytes).toBe(8 * 1024 * 1024);
    expect(c.historyCacheMaxBytes).toBe(512 * 1024);
    expect(c.readConnections).toBe(2);
    expect(c.pgPoolMax).toBe(25);
  });

  it("defaults when absent, and the shipped config/serving.yaml matches the defaults", () => {
    const c = loadServingConfig(write("mastered_at: 0.7\n"));
    expect([c.cacheMaxBytes, c.historyCacheMaxBytes, c.readConnections, c.pgPoolMax]).toEqual([
      64 * 1024 * 1024,
      16 * 1024 * 1024,
      4,
      10,
    ]);
    const shipped = loadServingConfig();
    expect([
      shipped.cacheMaxBytes,
      shipped.historyCacheMaxBytes,
      shipped.readConnections,
      shipped.pgPoolMax,
    ]).toEqual([
      DEFAULT_SERVING_CONFIG.cacheMaxBytes,
      DEFAULT_SERVING_CONFIG.historyCacheMaxBytes,
      DEFAULT_SERVING_CONFIG.readConnections,
      DEFAULT_SERVING_CONFIG.pgPoolMax,
    ]);
  });

  it("the shipped config/serving.yaml serves the 'served' estimate first, as the defaults do", () => {
    // `mastery serve` reads this file: without 'served' in it, GET /mastery served BKT (no interval,
    // no P(correct), no evidence) even after `mastery score served`.
    expect(loadServingConfig().scoreSources).toEqual([...DEFAULT_SOURCE_ORDER]);
    expect(loadServingConfig().scoreSources[0]).toBe("served");
  });

  it("reads shared_cache_ttl_s (s -> ms), 300 s by default and in the shipped file", () => {
    expect(loadServingConfig(write("shared_cache_ttl_s: 5\n")).sharedCacheTtlMs).toBe(5000);
    expect(loadServingConfig(write("warm_up:\n  rounds: 0\n")).warmUp).toEqual({
      rounds: 0,
      students: 25,
      budgetMs: 5000,
      minRequests: 600,
    });
    expect(
      loadServingConfig(write("warm_up:\n  students: 5\n  budget_ms: 800\n  min_requests: 40\n")).warmUp,
    ).toEqual({
      rounds: 3,
      students: 5,
      budgetMs: 800,
      minRequests: 40,
    });
    expect(loadServingConfig().warmUp).toEqual(DEFAULT_SERVING_CONFIG.warmUp);
    expect(loadServingConfig(write("mastered_at: 0.7\n")).sharedCacheTtlMs).toBe(300_000);
    expect(loadServingConfig().sharedCacheTtlMs).toBe(INVALIDATED_CACHE_TTL_MS);
    expect(loadServingConfig().sharedCacheTtlMs).toBe(DEFAULT_SERVING_CONFIG.sharedCacheTtlMs);
  });

  it("reads duck_threads (1 by default and in the shipped file; 0 = one per core), refuses non-integers", () => {
    expect(loadServingConfig(write("duck_threads: 0\n")).duckThreads).toBe(0);
    expect(loadServingConfig(write("duck_threads: 2\n")).duckThreads).toBe(2);
    expect(loadServingConfig(write("mastered_at: 0.7\n")).duckThreads).toBe(1);
    expect(loadServingConfig().duckThreads).toBe(DEFAULT_SERVING_CONFIG.duckThreads);
    for (const bad of ["-1", "1.5", "two"])
      expect(() => loadServingConfig(write(`duck_threads: ${bad}\n`))).toThrow(
        /duck_threads must be an integer >= 0 .*e\.g\. 1/,
      );
  });

  it("mastery serve's DuckDB instance runs with duck_threads threads (0: DuckDB's own default)", async () => {
    const threadsOf = async (duckThreads: number) => {
      const s = await DuckStore.open(":memory:", servingDuckOptions({ duckThreads }));
      try {
        const r = await s.all<{ t: unknown }>("SELECT current_setting('threads') AS t");
        return Number(r[0]?.t);
      } finally {
        s.close();
      }
    };
    expect(await threadsOf(1)).toBe(1);
    expect(await threadsOf(3)).toBe(3);
    const dflt = await threadsOf(0);
    expect(dflt).toBeGreaterThanOrEqual(1);
    expect(servingDuckOptions({ duckThreads: 0 })).toEqual({});
  });

  it("names the key when a value is not a number", () => {
    expect(() => loadServingConfig(write("pg_pool_max: many\n"))).toThrow(/pg_pool_max must be a number/);
  });
});

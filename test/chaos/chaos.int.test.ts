import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chaosPlan } from "../../chaos/plan.ts";
import type { ScenarioContext, ScenarioResult } from "../../chaos/scenarios.ts";
import { type ChaosServices, missingTools, startChaosServices } from "../../chaos/services.ts";

/**
 * The short chaos suite (`npm run chaos -- --short` runs the same plan): private PostgreSQL, Redis
 * and NATS started here on ports 25442 / 26389 / 24232 (HTTP 28085), faults injected
 * while real `mastery worker` / `mastery serve` processes take events, then every acknowledged
 * event must be stored, none double-counted, the state equal to the full replay, and no 5xx other
 * than 503 + Retry-After. Timings (/healthz latency) are reported by `npm run chaos`, not asserted.
 */

const missing = missingTools();
if (missing.length > 0) console.warn(`chaos suite skipped: missing ${missing.join(", ")}`);

describe.skipIf(missing.length > 0)("chaos (short): faults against private PostgreSQL, Redis, NATS", () => {
  let services: ChaosServices;
  let ctx: ScenarioContext;
  beforeAll(async () => {
    // Ports of their own (not the 2543x defaults), so `npm run chaos` can run at the same time.
    process.env.MASTERY_CHAOS_HTTP_PORT ??= "28085";
    services = await startChaosServices(() => {}, { pg: 25442, redis: 26389, nats: 24232 });
    ctx = { services, log: () => {}, scale: 0.1 };
  }, 120_000);
  afterAll(async () => {
    await services?.close();
  });

  const expectTargets = (r: ScenarioResult) => {
    const counts = {
      lost: r.lost,
      doubleCounted: r.doubleCounted,
      recomputeOk: r.recomputeOk,
      http5xx: r.http5xx,
    };
    expect(counts, `${r.name}: ${r.notes.join("; ")}`).toEqual({
      lost: 0,
      doubleCounted: 0,
      recomputeOk: true,
      http5xx: 0,
    });
    expect(r.acknowledged).toBeGreaterThan(0);
  };

  for (const p of chaosPlan(true)) {
    it(p.name, { timeout: 300_000 }, async () => {
      const r = await p.run(ctx);
      expectTargets(r);
      if (p.name === "stream-poison") {
        // The 40 valid messages are all stored (lost 0 above); each of the 5 poison messages ends
        // exactly once either dead-lettered alone (malformed, invalid, refused by PostgreSQL) or,
        // for the one the contract accepts (a very long topic id, unless a length bound rejects
        // it), stored.
        expect(r.stored).toBeGreaterThanOrEqual(40);
        expect(r.stored - 40 + r.deadLettered).toBe(5);
        expect(r.deadLetterReasons.map((d) => d.split(" ")[0])).toEqual(
          expect.arrayContaining(["p2", "p3", "p4", "(no"]),
        );
      } else if (p.name === "http-fuzz") {
        // Every valid event of the mix was acknowledged and stored.
        expect(r.notes.filter((n) => n.includes("valid events were never acknowledged"))).toEqual([]);
      } else {
        expect(r.stored).toBe(r.acknowledged);
      }
    });
  }
});

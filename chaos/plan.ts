import {
  httpFuzz,
  httpOneKey,
  httpPgOutage,
  httpRedisRestart,
  type ScenarioContext,
  type ScenarioResult,
  streamKill9,
  streamNatsRestart,
  streamPgRestart,
  streamPoison,
  streamRedisRestart,
} from "./scenarios.ts";

/** One scenario of the plan. */
export interface PlannedScenario {
  name: string;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}

/** The long plan (`npm run chaos`) or the short one (inside `npm test`). */
export function chaosPlan(short: boolean): PlannedScenario[] {
  const p = (name: string, run: PlannedScenario["run"]) => ({ name, run });
  if (short)
    return [
      p("stream-pg-outage", (c) => streamPgRestart(c, 5000)),
      p("stream-poison", (c) => streamPoison(c)),
      p("stream-kill9", (c) => streamKill9(c, 3)),
      p("http-pg-outage", (c) => httpPgOutage(c, 3000)),
      p("http-redis-restart", (c) => httpRedisRestart(c)),
      p("http-fuzz", (c) => httpFuzz(c, 500)),
      p("http-one-key-batch", (c) => httpOneKey(c, false)),
    ];
  return [
    p("stream-pg-restart", (c) => streamPgRestart(c, 2000)),
    p("stream-pg-outage", (c) => streamPgRestart(c, 15_000)),
    p("stream-redis-restart", (c) => streamRedisRestart(c)),
    p("stream-nats-restart", (c) => streamNatsRestart(c)),
    p("stream-kill9", (c) => streamKill9(c, 8)),
    p("stream-poison", (c) => streamPoison(c)),
    p("http-pg-restart", (c) => httpPgOutage(c, 2000)),
    p("http-pg-outage", (c) => httpPgOutage(c, 15_000)),
    p("http-redis-restart", (c) => httpRedisRestart(c)),
    p("http-fuzz", (c) => httpFuzz(c, 10_000)),
    p("http-one-key-batch", (c) => httpOneKey(c, false)),
    p("http-one-key-singles", (c) => httpOneKey(c, true)),
  ];
}

/** The targets a scenario missed (empty when it met them all). */
export function meetsTargets(r: ScenarioResult): string[] {
  const miss: string[] = [];
  if (r.lost > 0) miss.push(`${r.lost} acknowledged events lost`);
  if (r.doubleCounted > 0) miss.push(`${r.doubleCounted} keys differ from the replay`);
  if (!r.recomputeOk) miss.push("recompute differs from the stream state");
  if (r.http5xx > 0) miss.push(`${r.http5xx} HTTP 5xx (besides 503 + Retry-After)`);
  if (r.healthzMaxMs !== null && r.healthzMaxMs > 100) miss.push(`/healthz took ${r.healthzMaxMs} ms`);
  return miss;
}

export function formatTable(results: readonly ScenarioResult[]): string {
  const head =
    "| scenario | sent | acknowledged | stored | lost | double-counted | recompute | dead letters | 5xx | 503 + Retry-After | /healthz max ms (warm) | s |";
  const rule = "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|";
  const rows = results.map(
    (r) =>
      `| ${r.name} | ${r.sent} | ${r.acknowledged} | ${r.stored} | ${r.lost} | ${r.doubleCounted} | ${r.recomputeOk ? "equal" : "differs"} | ${r.deadLettered} | ${r.http5xx} | ${r.http503} | ${r.healthzMaxMs === null ? "-" : `${r.healthzMaxMs} (${r.healthzWarmMaxMs})`} | ${r.seconds} |`,
  );
  return [head, rule, ...rows].join("\n");
}

/**
 * A serving app set up the way the serving benches measure it (admin token, no rate limit, warn-level
 * logs, no default process metrics), listening on a free loopback port.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import type * as Alerts from "../serving/alerts.ts";
import type * as App from "../serving/app.ts";
import { signToken } from "../serving/auth.ts";
import { BENCH_SECRET } from "./benchEnv.ts";

export interface BenchServer extends App.AppHandle {
  server: Server;
  /** http://127.0.0.1:PORT */
  base: string;
  /** "Bearer …" of an admin token signed with BENCH_SECRET. */
  authorization: string;
}

/**
 * `createApp` and `parseThresholds` are passed in, so an A/B bench can serve another tree's code in the
 * same process (bench/duckAB.bench.ts); `deps` adds to or overrides the bench defaults.
 */
export async function listenBenchApp(
  code: { createApp: typeof App.createApp; parseThresholds: typeof Alerts.parseThresholds },
  deps: Pick<App.AppDeps, "store" | "pseudonymizer"> & Partial<App.AppDeps>,
): Promise<BenchServer> {
  const handle = await code.createApp({
    jwtSecret: BENCH_SECRET,
    logger: pino({ level: "warn" }),
    thresholds: code.parseThresholds({}, {}),
    defaultMetrics: false,
    config: { rateLimit: { windowMs: 60_000, limit: 0 } },
    ...deps,
  });
  const server = handle.app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const authorization = `Bearer ${await signToken(BENCH_SECRET, { role: "admin", sub: "bench" }, "1h")}`;
  return { ...handle, server, base, authorization };
}

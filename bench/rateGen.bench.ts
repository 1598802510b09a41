/**
 * The load generator's own error at a fixed rate: bare Express (a fixed 6.7 kB JSON body, in its own
 * process) driven at RATEGEN_RATE req/s (default 1,000) for RATEGEN_SECONDS (default 10) by autocannon
 * (`overallRate`, 50 connections) and by bench/pacedLoad.ts (paced, 50 connections at most), in
 * RATEGEN_ROUNDS (default 2) interleaved rounds. Bare Express answers in well under a millisecond of CPU, so
 * what either tool reports above that is the tool and the machine: the p99 a generator can resolve.
 *   npx tsx bench/rateGen.bench.ts
 */
import { fork } from "node:child_process";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import express from "express";
import { envNumber as env } from "./benchEnv.ts";
import { pacedLoad } from "./pacedLoad.ts";

if (process.argv.includes("--bare")) {
  const body = JSON.stringify({ pad: "x".repeat(6700) });
  const app = express();
  app.get("/mastery/:id", (_q, res) => void res.type("application/json").send(body));
  const server = app.listen(0, "127.0.0.1", () =>
    process.send?.({ port: (server.address() as AddressInfo).port }),
  );
  process.on("message", (m) => {
    if (m === "stop") process.exit(0);
  });
} else {
  const rate = env("RATEGEN_RATE", 1000);
  const seconds = env("RATEGEN_SECONDS", 10);
  const rounds = env("RATEGEN_ROUNDS", 2);
  const connections = 50;
  const bare = fork(fileURLToPath(import.meta.url), ["--bare"], { execArgv: ["--import", "tsx"] });
  const port = await new Promise<number>((ok) =>
    bare.once("message", (m) => ok((m as { port: number }).port)),
  );
  type Cannon = (o: Record<string, unknown>) => Promise<{
    requests: { average: number };
    latency: { p50: number; p99: number; max: number };
    errors: number;
    non2xx: number;
  }>;
  const autocannon = createRequire(import.meta.url)("autocannon") as Cannon;
  const url = `http://127.0.0.1:${port}`;
  const la = () =>
    loadavg()
      .map((x) => x.toFixed(1))
      .join(" ");
  await pacedLoad({
    port,
    rate,
    durationS: 1,
    connections,
    next: () => ({ method: "GET", path: "/mastery/1" }),
  });
  await autocannon({ url: `${url}/mastery/1`, connections, duration: 1, overallRate: rate });
  process.stdout.write(
    `rate generator check: bare Express (6.7 kB body) at ${rate} req/s, ${seconds} s per run, ${connections} connections\n`,
  );
  for (let r = 1; r <= rounds; r++) {
    const a = await autocannon({
      url: `${url}/mastery/1`,
      connections,
      duration: seconds,
      overallRate: rate,
    });
    process.stdout.write(
      `  round ${r} autocannon: ${a.requests.average.toFixed(0)} req/s, p50 ${a.latency.p50} ms, p99 ${a.latency.p99} ms, max ${a.latency.max} ms, errors ${a.errors + a.non2xx} (load ${la()})\n`,
    );
    const p = await pacedLoad({
      port,
      rate,
      durationS: seconds,
      connections,
      next: () => ({ method: "GET", path: "/mastery/1" }),
    });
    process.stdout.write(
      `  round ${r} paced:      ${p.achievedRate.toFixed(0)} req/s, p50 ${p.latency.p50.toFixed(1)} ms, p99 ${p.latency.p99.toFixed(1)} ms, max ${p.latency.max.toFixed(1)} ms, ` +
        `errors ${p.errors + p.timeouts + p.non2xx}, send lag p99 ${p.sendLag.p99.toFixed(1)} ms (load ${la()})\n`,
    );
  }
  bare.send("stop");
}

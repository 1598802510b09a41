/**
 * The balancer's side of a SIGKILL (issue 15 item 4), without the product: HAProxy with deploy/haproxy.cfg
 * (or LB_CFG) in front of two small stand-in servers, open-loop GETs at LB_RATE req/s, and every LB_PERIOD
 * seconds stand-in 2 is SIGKILLed and started again. A stand-in behaves like a restarted `mastery serve` at
 * its edges: it listens LB_START_MS after it was started (node's start, the store's open), answers /readyz
 * 503 for LB_WARM_MS more while it warms up (serving/warmUp.ts; requests reaching it then are served, but
 * LB_COLD_MS slower), then 200; every request takes LB_SERVICE_MS. Each stand-in costs little CPU, so the
 * failures counted here are the balancer's (how long it keeps sending to a dead or warming server, what its
 * retries and queue do), not the servers' speed: a config change can be judged on a loaded machine, where
 * bench/availability.bench.ts cannot be.
 *
 *   npx tsx bench/lbFailover.bench.ts                                     # deploy/haproxy.cfg
 *   LB_CFG=/tmp/variant.cfg LB_KILLS=5 npx tsx bench/lbFailover.bench.ts  # a variant of it
 *
 * Prints, per config: requests, failures by cause, failures and p99 in the LB_AFTER_S seconds after each kill.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { envNumber as env } from "./benchEnv.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CFG = process.env.LB_CFG || join(ROOT, "deploy/haproxy.cfg");
const HAPROXY = process.env.HAPROXY || "/usr/sbin/haproxy";
const RATE = env("LB_RATE", 500);
const PERIOD = env("LB_PERIOD", 12);
const KILLS = env("LB_KILLS", 4);
const AFTER_S = env("LB_AFTER_S", 10);
const START_MS = env("LB_START_MS", 1500);
const WARM_MS = env("LB_WARM_MS", 1500);
const COLD_MS = env("LB_COLD_MS", 20);
const SERVICE_MS = env("LB_SERVICE_MS", 2);
const BASE = env("LB_PORT", 23000 + (process.pid % 400) * 4);

/** The stand-in server: one small node process (no product code, so its start is the modelled delay). */
const STAND_IN = `
const http = require("node:http");
const [port, startMs, warmMs, coldMs, serviceMs] = process.argv.slice(1).map(Number);
setTimeout(() => {
  const readyAt = Date.now() + warmMs;
  http.createServer((req, res) => {
    const ready = Date.now() >= readyAt;
    if (req.url === "/readyz") { res.writeHead(ready ? 200 : 503); res.end(ready ? "ok" : "warming_up"); return; }
    setTimeout(() => { res.writeHead(200, { "content-type": "application/json" }); res.end('{"ok":true}'); },
      ready ? serviceMs : serviceMs + coldMs);
  }).listen(port, "127.0.0.1");
}, startMs);
`;

function startStandIn(port: number): ChildProcess {
  return spawn(
    process.execPath,
    ["-e", STAND_IN, String(port), String(START_MS), "0", "0", String(SERVICE_MS)],
    {
      stdio: "ignore",
    },
  );
}

function restartStandIn(port: number): ChildProcess {
  return spawn(
    process.execPath,
    ["-e", STAND_IN, String(port), String(START_MS), String(WARM_MS), String(COLD_MS), String(SERVICE_MS)],
    { stdio: "ignore" },
  );
}

/** Until HAProxy's stats CSV shows `n` servers UP (as deploy/local.sh wait_topology), at most 60 s. */
async function waitAllUp(statsPort: number, n: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const csv = await new Promise<string>((resolve) => {
      const req = httpRequest(`http://127.0.0.1:${statsPort}/;csv`, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve(body));
      });
      req.on("error", () => resolve(""));
      req.end();
    });
    const up = csv
      .split("\n")
      .filter((l) => /^mastery_servers,s\d+,/.test(l) && l.split(",")[17] === "UP").length;
    if (up >= n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`HAProxy did not see ${n} stand-in servers UP within 60 s (stats on port ${statsPort})`);
}

interface Sample {
  at: number;
  ms: number;
  ok: boolean;
  why?: string;
}

function get(agent: Agent, url: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => req.destroy(new Error("timeout after 5 s")), 5000);
    const req = httpRequest(url, { agent }, (res) => {
      res.resume();
      res.on("end", () => {
        clearTimeout(deadline);
        resolve({ status: res.statusCode ?? 0 });
      });
    });
    req.on("error", (e) => {
      clearTimeout(deadline);
      reject(e);
    });
    req.end();
  });
}

/** "t=12:40 t=13:7 ..." for the seconds with failures (by send time). */
function timeline(failed: readonly Sample[], start: number): string {
  const bySecond = new Map<number, number>();
  for (const f of failed) {
    const t = Math.floor((f.at - start) / 1000);
    bySecond.set(t, (bySecond.get(t) ?? 0) + 1);
  }
  return [...bySecond].map(([t, n]) => `t=${t}:${n}`).join(" ") || "none";
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "lbfailover-"));
  const lbPort = BASE;
  const ports = [BASE + 1, BASE + 2];
  const cfg = readFileSync(CFG, "utf8")
    .replaceAll("${MASTERY_LB_PORT}", String(lbPort))
    .replaceAll("${MASTERY_LB_STATS_PORT}", String(BASE + 3))
    .replace(/^\s*log stdout.*$/m, "");
  const cfgPath = join(dir, "haproxy.cfg");
  writeFileSync(
    cfgPath,
    `${cfg}\n${ports.map((p, i) => `    server s${i + 1} 127.0.0.1:${p} check`).join("\n")}\n`,
  );
  try {
    execFileSync(HAPROXY, ["-c", "-q", "-f", cfgPath]);
  } catch (e) {
    throw new Error(
      `HAProxy rejected ${CFG} (checked copy ${cfgPath}): ${(e as Error).message}; install Debian's haproxy or fix the config`,
    );
  }
  const servers = ports.map((p) => startStandIn(p));
  const lb = spawn(HAPROXY, ["-db", "-f", cfgPath], { stdio: "ignore" });
  await waitAllUp(BASE + 3, 2);

  const agent = new Agent({ keepAlive: true, maxSockets: 256, timeout: 4000 });
  const samples: Sample[] = [];
  const pending = new Set<Promise<void>>();
  const start = Date.now();
  const end = start + (KILLS * PERIOD + 2) * 1000;
  let sent = 0;
  const ticker = setInterval(() => {
    const due = Math.floor(((Date.now() - start) / 1000) * RATE);
    while (sent < due && Date.now() < end) {
      sent++;
      const t0 = Date.now();
      const p = get(agent, `http://127.0.0.1:${lbPort}/mastery/x`)
        .then((r) => {
          const ok = r.status < 500;
          samples.push({
            at: t0,
            ms: Date.now() - t0,
            ok,
            ...(ok ? {} : { why: `${r.status} from HAProxy` }),
          });
        })
        .catch((e: Error) => {
          samples.push({
            at: t0,
            ms: Date.now() - t0,
            ok: false,
            why: e.message.split(" ").slice(0, 3).join(" "),
          });
        })
        .finally(() => pending.delete(p));
      pending.add(p);
    }
  }, 5);

  const kills: number[] = [];
  for (let k = 1; k <= KILLS; k++) {
    await new Promise((r) => setTimeout(r, start + (k * PERIOD - PERIOD / 2) * 1000 - Date.now()));
    kills.push(Date.now());
    servers[1]?.kill("SIGKILL");
    servers[1] = restartStandIn(ports[1] as number);
  }
  await new Promise((r) => setTimeout(r, Math.max(0, end - Date.now())));
  clearInterval(ticker);
  await Promise.all(pending);
  agent.destroy();
  for (const s of servers) s?.kill("SIGKILL");
  lb.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });

  const q = (xs: number[], p: number) => {
    const a = [...xs].sort((x, y) => x - y);
    return a[Math.min(a.length - 1, Math.floor(p * a.length))] ?? Number.NaN;
  };
  const failed = samples.filter((s) => !s.ok);
  const byWhy = new Map<string, number>();
  for (const f of failed) byWhy.set(f.why ?? "?", (byWhy.get(f.why ?? "?") ?? 0) + 1);
  const after = samples.filter((s) => kills.some((k) => s.at >= k && s.at < k + AFTER_S * 1000));
  const perKill = kills.map((k) => failed.filter((s) => s.at >= k && s.at < k + AFTER_S * 1000).length);
  process.stdout.write(
    `lbFailover: ${CFG}\n` +
      `  ${samples.length} requests at ${RATE} req/s, ${KILLS} SIGKILLs of stand-in 2 (start ${START_MS} ms, warm-up ${WARM_MS} ms, ` +
      `cold +${COLD_MS} ms, service ${SERVICE_MS} ms)\n` +
      `  failed ${failed.length} (${((100 * failed.length) / samples.length).toFixed(3)}%): ` +
      `${[...byWhy].map(([k, v]) => `${k} ${v}`).join(", ") || "none"}\n` +
      `  failures in the ${AFTER_S} s after each kill: ${perKill.join(" / ")}; p50 / p99 there ${q(
        after.map((s) => s.ms),
        0.5,
      ).toFixed(1)} / ${q(
        after.map((s) => s.ms),
        0.99,
      ).toFixed(1)} ms; p99 elsewhere ${q(
        samples.filter((s) => !after.includes(s)).map((s) => s.ms),
        0.99,
      ).toFixed(1)} ms\n` +
      `  failures by second of the run: ${timeline(failed, start)}\n` +
      `  load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" / ")}\n`,
  );
}

main().catch((e: Error) => {
  process.stderr.write(`lbFailover: ${e.message}\n`);
  process.exit(1);
});

/**
 * `mastery serve --workers 2` on PostgreSQL + Redis, as an operator runs it (the real CLI, real
 * services, own schema / key prefix "scale_workers_*"): both server processes answer on the one port
 * and share their stores, a worker killed with SIGKILL is replaced by the primary, and SIGTERM to the
 * primary lets a request in flight finish, closes idle keep-alive connections and exits 0 within 10 s.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_JWT_SECRET, signToken } from "../../serving/auth.ts";
import { dropServices, PG_URL, REDIS_URL, runId } from "./streamHarness.ts";

const MASTERY = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "mastery.js");
const id = runId("scale_workers").toLowerCase();
let dir: string;
let port: number;
let primary: ChildProcess;
let log = "";
let token: string;

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 100 ms until it returns true; fails with `what` (and the log tail) after `ms`. */
async function until(what: string, ms: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} within ${ms} ms; server log tail:\n${log.slice(-3000)}`);
    await sleep(100);
  }
}

/** One request on a fresh connection (no keep-alive, so the primary hands each to the next worker). */
function call(
  path: string,
  opts: { method?: string; body?: unknown } = {},
): Promise<{ status: number; worker: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path,
        method: opts.method ?? "GET",
        agent: false,
        timeout: 10_000,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
      },
      (res) => {
        let text = "";
        res.on("data", (d) => {
          text += d;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            worker: res.headers["x-mastery-worker"] as string | undefined,
            body: text,
          }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 10 s")));
    req.on("error", reject);
    req.end(body);
  });
}

/** The primary's live children (the server workers), by pid; an exited child not yet reaped (Z) is not one. */
function workerPids(): number[] {
  try {
    return execFileSync("ps", ["-o", "pid=,stat=", "--ppid", String(primary.pid)], { encoding: "utf8" })
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter(([, stat]) => stat !== undefined && !stat.startsWith("Z"))
      .map(([pid]) => Number(pid))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there is none
  }
}

/** Which worker ids answer /healthz over `n` fresh connections. */
async function answering(n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await call("/healthz").catch(() => undefined);
    if (r?.status === 200 && r.worker !== undefined) seen.add(r.worker);
  }
  return seen;
}

const quiz = (eventId: string, student: string, topic: string, minute: number) => ({
  event_id: eventId,
  type: "quiz_attempt",
  student_id: student,
  topic_id: topic,
  timestamp: new Date(Date.UTC(2026, 0, 6, 8, minute)).toISOString(),
  question_id: `q-${minute}`,
  is_correct: true,
  time_spent_sec: 20,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mastery-scale-workers-"));
  port = await freePort();
  token = await signToken(DEMO_JWT_SECRET, { role: "admin", sub: "serve-workers-test" });
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MASTERY_")) env[k] = v;
  primary = spawn(
    process.execPath,
    [
      MASTERY,
      "serve",
      "--demo",
      "--no-monitor",
      "--workers",
      "2",
      "--port",
      String(port),
      "--db",
      join(dir, "api.duckdb"),
    ],
    {
      env: {
        ...env,
        MASTERY_QUIET: "1",
        LOG_LEVEL: "info",
        MASTERY_PG_URL: PG_URL,
        MASTERY_PG_SCHEMA: id,
        MASTERY_REDIS_URL: REDIS_URL,
        MASTERY_REDIS_PREFIX: id,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const onData = (d: Buffer) => {
    log += d.toString();
  };
  primary.stdout?.on("data", onData);
  primary.stderr?.on("data", onData);
  // Both workers listening (worker 2 starts once worker 1 has created the tables).
  await until("two server workers listening", 170_000, () => {
    if (primary.exitCode !== null) throw new Error(`serve --workers 2 exited ${primary.exitCode}: ${log}`);
    return (log.match(/mastery API listening/g) ?? []).length >= 2;
  });
}, 180_000);

afterAll(async () => {
  if (primary !== undefined && primary.exitCode === null) {
    primary.kill("SIGKILL");
    for (const pid of workerPids()) process.kill(pid, "SIGKILL");
  }
  rmSync(dir, { recursive: true, force: true });
  await dropServices(id);
});

describe("mastery serve --workers 2 (PostgreSQL + Redis)", () => {
  it("both workers answer on the one port and share the stores: an event posted to one is read from both", {
    timeout: 90_000,
  }, async () => {
    // Exactly two (a worker that failed its start is replaced after a backoff; the log tail says why).
    await until("exactly two live server workers", 30_000, () => workerPids().length === 2);
    expect([...(await answering(12))].sort()).toEqual(["1", "2"]);

    const posted = await call("/events", {
      method: "POST",
      body: { events: [quiz("scale-w-1", "student-w", "T1", 1), quiz("scale-w-2", "student-w", "T1", 2)] },
    });
    expect(posted.status, posted.body).toBe(200);
    // Read until each worker has answered with the score (its body cache lives 1 s at most).
    const scored = new Map<string, number>();
    await until("both workers serving the posted student's score", 30_000, async () => {
      const r = await call("/mastery/student-w");
      if (r.status === 200 && r.worker !== undefined) {
        const topics = (
          JSON.parse(r.body) as { topics?: { topicId: string; scores: Record<string, { score: number }> }[] }
        ).topics;
        const bkt = topics?.find((t) => t.topicId === "T1")?.scores.bkt;
        if (bkt !== undefined) scored.set(r.worker, bkt.score);
      }
      return scored.size === 2;
    });
    const [a, b] = [...scored.values()];
    expect(a).toBeGreaterThan(0);
    expect(b).toBe(a);
  });

  it("a worker killed with SIGKILL is replaced by the primary and the port keeps answering", {
    timeout: 90_000,
  }, async () => {
    await until("exactly two live server workers", 30_000, () => workerPids().length === 2);
    const before = workerPids();
    expect(before).toHaveLength(2);
    const victim = before[0]!;
    process.kill(victim, "SIGKILL");
    const t0 = Date.now();
    // The survivor answers while the replacement starts (a connection handed to the victim in the
    // instant it died may fail: at most one).
    let ok = 0;
    let failed = 0;
    await until("a replacement worker", 60_000, async () => {
      const r = await call("/healthz").catch(() => undefined);
      if (r?.status === 200) ok++;
      else failed++;
      const now = workerPids();
      return now.length === 2 && !now.includes(victim);
    });
    expect(log).toMatch(/server worker exited unexpectedly; replacing it.*"signal":"SIGKILL"/);
    await until("the replacement answering", 60_000, async () => (await answering(8)).size === 2);
    expect(ok).toBeGreaterThan(0);
    expect(failed).toBeLessThanOrEqual(1);
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it("SIGTERM: a request in flight finishes, idle keep-alive connections are closed, the primary exits 0 within 10 s", {
    timeout: 60_000,
  }, async () => {
    // An idle keep-alive connection (one answered request, left open).
    const idle = connect(port, "127.0.0.1");
    let idleClosed = false;
    let idleAnswer = "";
    idle.on("data", (d) => {
      idleAnswer += d.toString();
    });
    idle.on("close", () => {
      idleClosed = true;
    });
    idle.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`);
    await until("the keep-alive request answered", 10_000, () => idleAnswer.includes("\r\n\r\n"));

    // A request in flight: POST /events whose body arrives in two parts, the second after SIGTERM.
    const body = JSON.stringify({ events: [quiz("scale-w-drain", "student-d", "T2", 3)] });
    const half = Math.floor(body.length / 2);
    const busy: Socket = connect(port, "127.0.0.1");
    let answer = "";
    busy.on("data", (d) => {
      answer += d.toString();
    });
    await new Promise<void>((r) => busy.once("connect", () => r()));
    busy.write(
      `POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`,
    );
    await sleep(500); // the server has the headers: the request is in flight

    const exited = new Promise<{ code: number | null; ms: number }>((resolve) => {
      const t0 = Date.now();
      primary.once("exit", (code) => resolve({ code, ms: Date.now() - t0 }));
    });
    primary.kill("SIGTERM");
    await sleep(1500);
    expect(primary.exitCode).toBeNull(); // still draining the request in flight
    busy.write(body.slice(half));
    await until("the in-flight request answered", 10_000, () => /\r\n\r\n[\s\S]*\}$/.test(answer));
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(answer).toContain('"status":"accepted"');
    busy.destroy();

    const { code, ms } = await exited;
    expect(code).toBe(0);
    expect(ms).toBeLessThan(10_000);
    expect(idleClosed).toBe(true);
    expect(workerPids()).toEqual([]);
  });
});

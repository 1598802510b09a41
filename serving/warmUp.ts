/**
 * Start-up warm-up of one `mastery serve` process, before it reports ready (issue 15 item 4).
 *
 * A process that has just started answers its first requests slowly: V8 has not compiled the routes,
 * the body builder, the JSON schemas' code paths or node's HTTP parser yet, the PostgreSQL pool has
 * no connection open (and each pooled connection prepares its statements on first use), and the
 * body cache is empty. Behind the balancer, a restarted server got its full share of traffic the
 * moment /readyz answered, and the 30 s after each restart carried the bench's p99 (246-254 ms
 * after a SIGKILL against 20-74 ms elsewhere; 708 ms in the first 30 s with both servers new).
 *
 * So the server sends itself a few rounds of the hot requests over loopback, through the same
 * Express stack and the same stores, while /readyz still answers 503 `warming_up`: GET /mastery,
 * the histories, the recommendations for a sample of stored students (by `key:` reference, so no
 * raw id is involved), and a POST /events whose body is not a batch (answered 400 before anything is
 * written: no event, no dead letter). Requests run `concurrency` at a time, so that many pool
 * connections open. Nothing here changes stored data; the bodies read go into the cache, which is
 * what the first real requests for those students would have done.
 */
import { once } from "node:events";
import { Agent, createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import type { Express } from "express";
import type { ServingConfig, ServingContext } from "./app.ts";

export interface WarmUpPlan {
  /** Student references to read: `key:<student_key>` of stored students (or raw ids in tests). */
  students: readonly string[];
  /** How many passes over the students' requests. */
  rounds: number;
  /**
   * Keep making passes (after `rounds`) until this many requests were sent (budget permitting): V8
   * compiles a function with its optimizing tier only after it ran many times, and a pass over a few
   * students (an empty or new store: one probe id) is a dozen requests; 0 or absent: `rounds` only.
   */
  minRequests?: number;
  /**
   * The opening burst: this many requests at once (e.g. the PostgreSQL pool size, so every pooled
   * connection opens). Every request after the burst runs `steadyConcurrency` at a time (default 1):
   * its job is only to run the code paths often enough for V8, and the process answers /healthz on its
   * public port meanwhile, so the warm-up must not keep a batch of cold requests queued on the event loop
   * (ten lanes held /healthz 100-140 ms in the chaos run's first seconds).
   */
  concurrency: number;
  steadyConcurrency?: number;
  /** Stop starting new requests after this many ms (a slow start must not delay readiness long). */
  budgetMs: number;
}

export interface WarmUpResult {
  requests: number;
  /** Requests that got no answer or an unexpected status (logged; readiness does not wait on them). */
  failed: number;
  ms: number;
  /** Median request time of the first and of the last round (ms): how much the warm-up took off. */
  firstRoundMedianMs: number;
  lastRoundMedianMs: number;
  stoppedBy: "rounds" | "budget";
}

interface WarmRequest {
  method: "GET" | "POST";
  path: string;
  body?: string;
  /** The status a warm server answers; any other counts as failed. */
  expect: number;
}

/** The hot routes of one student (the mix an LMS sends), and one POST that writes nothing. */
export function warmRequests(student: string): WarmRequest[] {
  const s = encodeURIComponent(student);
  return [
    { method: "GET", path: `/mastery/${s}`, expect: 200 },
    { method: "GET", path: `/mastery/${s}/history`, expect: 200 },
    { method: "GET", path: `/recommendations/${s}`, expect: 200 },
    // Not a batch: 400 invalid_body from the parser, before intake (nothing written).
    { method: "POST", path: "/events", body: "{}", expect: 400 },
  ];
}

/**
 * The students the warm-up reads: the sampled stored ones (`key:` references), padded with made-up ids
 * (`warm-up-probe-<i>`, pseudonymized like any other, with no rows) up to `students`. On an empty or
 * young store (a new deployment, the availability bench) the sample is short, and a pass over one id
 * reads it once from the store and then from the body cache: distinct ids keep the miss path (pool,
 * statements, body building) in the warm-up too.
 */
export function warmUpStudents(storedKeys: readonly string[], students: number): string[] {
  const out = storedKeys.map((k) => `key:${k}`);
  for (let i = 0; out.length < Math.max(1, students); i++) out.push(`warm-up-probe-${i}`);
  return out;
}

/** Sends one request; resolves with the status (0 when it failed to connect or timed out). */
type Send = (r: WarmRequest) => Promise<number>;

function httpSender(baseUrl: string, token: string, agent: Agent, timeoutMs: number): Send {
  return (r) =>
    new Promise((resolve) => {
      const req = httpRequest(
        `${baseUrl}${r.path}`,
        {
          agent,
          method: r.method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(r.body !== undefined ? { "content-type": "application/json" } : {}),
          },
          timeout: timeoutMs,
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("error", () => resolve(0));
        },
      );
      req.on("timeout", () => req.destroy());
      req.on("error", () => resolve(0));
      req.end(r.body);
    });
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.floor(a.length / 2)] as number;
};

/** Runs `plan` through `send` (exported for tests; `warmUp` is the HTTP form). */
export async function runWarmUp(
  plan: WarmUpPlan,
  send: Send,
  now = () => performance.now(),
): Promise<WarmUpResult> {
  const t0 = now();
  const students = plan.students.length > 0 ? plan.students : [];
  const perRound = students.flatMap(warmRequests);
  let requests = 0;
  let failed = 0;
  let firstRoundMedianMs = Number.NaN;
  let lastRoundMedianMs = Number.NaN;
  let stoppedBy: WarmUpResult["stoppedBy"] = "rounds";
  let inFlight = 0;
  const minRequests = plan.minRequests ?? 0;
  for (let round = 0; (round < plan.rounds || requests < minRequests) && perRound.length > 0; round++) {
    if (now() - t0 > plan.budgetMs) {
      stoppedBy = "budget";
      break;
    }
    const times: number[] = [];
    let next = 0;
    const steady = Math.max(1, plan.steadyConcurrency ?? 1);
    // Lane i keeps going while it is one of the steady lanes, or while the opening burst is not sent yet.
    const lane = async (i: number): Promise<void> => {
      while (next < perRound.length && now() - t0 <= plan.budgetMs) {
        if (i >= steady && requests + inFlight >= plan.concurrency) return;
        const r = perRound[next++] as WarmRequest;
        inFlight++;
        const start = now();
        const status = await send(r);
        inFlight--;
        times.push(now() - start);
        requests++;
        if (status !== r.expect) failed++;
      }
    };
    const lanes = Math.max(steady, requests < plan.concurrency ? plan.concurrency : 1);
    await Promise.all(
      Array.from({ length: Math.max(1, Math.min(lanes, perRound.length)) }, (_, i) => lane(i)),
    );
    if (round === 0) firstRoundMedianMs = median(times);
    lastRoundMedianMs = median(times);
    if (next < perRound.length) {
      stoppedBy = "budget";
      break;
    }
  }
  return { requests, failed, ms: now() - t0, firstRoundMedianMs, lastRoundMedianMs, stoppedBy };
}

/** Warms the server listening at `baseUrl` (loopback) with a token that may read mastery. */
export async function warmUp(baseUrl: string, token: string, plan: WarmUpPlan): Promise<WarmUpResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(1, plan.concurrency) });
  try {
    return await runWarmUp(plan, httpSender(baseUrl, token, agent, Math.max(1000, plan.budgetMs)));
  } finally {
    agent.destroy();
  }
}

/**
 * Warms a server built by createApp, while its /readyz answers 503 `warming_up`: the requests go to
 * a private HTTP server for the same app on an ephemeral loopback port (under `--workers` the shared
 * port would spread them over the other processes), which is closed afterwards. `token`: a bearer
 * token that may read mastery (a short-lived service token signed by the caller). Never throws: a
 * failed warm-up is logged and the server turns ready anyway (warm-up is an optimisation).
 */
export async function warmUpApp(
  app: Express,
  ctx: Pick<ServingContext, "startup" | "read" | "readRun" | "logger">,
  config: ServingConfig["warmUp"],
  opts: { token: string; concurrency: number },
): Promise<WarmUpResult | null> {
  if (config.rounds <= 0) {
    ctx.startup.warmingUp = false;
    return null;
  }
  ctx.startup.warmingUp = true;
  const server = createServer(app);
  try {
    server.listen({ port: 0, host: "127.0.0.1", exclusive: true });
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    const keys = await ctx.readRun(() => ctx.read.sampleStudentKeys(Math.max(1, config.students)));
    const students = warmUpStudents(keys, config.students);
    const result = await warmUp(`http://127.0.0.1:${port}`, opts.token, {
      students,
      rounds: config.rounds,
      minRequests: config.minRequests,
      concurrency: opts.concurrency,
      budgetMs: config.budgetMs,
    });
    ctx.logger.info({ ...result, students: students.length }, "warm-up done");
    return result;
  } catch (err) {
    ctx.logger.warn({ err: (err as Error).message }, "warm-up failed; serving anyway");
    return null;
  } finally {
    server.closeAllConnections();
    server.close();
    ctx.startup.warmingUp = false;
  }
}

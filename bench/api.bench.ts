/**
 * API throughput: GET /mastery/:studentId on a generated store (2,000 students x 20 topics, bkt +
 * elo rows, topics in 4 chapters) against a bare Express endpoint returning a fixed JSON body of the
 * same size, both under autocannon with the same connections and duration, in one run.
 * The servers run in a child process so autocannon does not share their event loop.
 * Targets: mastery >= 50% of the bare endpoint's requests/s, and p99 <= 10 ms.
 *
 *   npx tsx bench/api.bench.ts [--students 2000] [--connections 10] [--seconds 10]
 */
import { fork } from "node:child_process";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import express from "express";
import { pino } from "pino";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { parseThresholds } from "../serving/alerts.ts";
import { createApp } from "../serving/app.ts";
import { signToken } from "../serving/auth.ts";
import { DuckStore } from "../storage/duckdb.ts";

const SECRET = "bench-secret-bench-secret-bench-secret";
const KEY = "bench-pseudonym-key-0123456789";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

async function serve(): Promise<void> {
  const students = arg("students", 2000);
  const topics = 20;
  const store = await DuckStore.open(":memory:");
  const pseudo = new Pseudonymizer(KEY);
  await store.run(
    `INSERT INTO topics SELECT 'T' || i, 'Topic ' || i, 'C' || (i % 4), 'S1', 'K1', 0, [], 10 FROM range(${topics}) t(i)`,
  );
  await store.run("CREATE TEMP TABLE keys (student_key VARCHAR, n INTEGER)");
  const ap = await store.conn.createAppender("keys", "main", "temp");
  for (let s = 0; s < students; s++) {
    ap.appendVarchar(pseudo.studentKey(`student-${s}`));
    ap.appendInteger(s);
    ap.endRow();
  }
  ap.closeSync();
  const explanation = `'{"base":0.3,"factors":[{"name":"correct_answers","value":5,"contribution":0.3},{"name":"incorrect_answers","value":2,"contribution":-0.1},{"name":"bkt_learn","value":0.1,"contribution":0.05}],"rest":0,"score":0.55}'`;
  await store.run(
    `INSERT INTO student_mastery
     SELECT k.student_key, 'T' || t.i, ((k.n * 7 + t.i * 13) % 100) / 100.0, src, 'default',
            TIMESTAMP '2026-01-05 10:00:00', ${explanation}, TIMESTAMP '2026-01-05 10:00:00'
     FROM keys k, range(${topics}) t(i), (VALUES ('bkt'), ('elo')) s(src)`,
  );
  const { app } = await createApp({
    store,
    pseudonymizer: pseudo,
    jwtSecret: SECRET,
    logger: pino({ level: "warn" }),
    thresholds: parseThresholds({}, {}),
    config: { rateLimit: { windowMs: 60_000, limit: 0 } },
  });
  const bodySample = await (async () => {
    const srv = app.listen(0);
    await new Promise((r) => srv.once("listening", r));
    const port = (srv.address() as AddressInfo).port;
    const token = await signToken(SECRET, { role: "admin", sub: "bench" });
    const res = await fetch(`http://127.0.0.1:${port}/mastery/student-1`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const text = await res.text();
    srv.close();
    return text;
  })();
  const bare = express();
  bare.get("/bare/:id", (_req, res) => {
    res.type("application/json").send(bodySample);
  });
  const a = app.listen(0, "127.0.0.1");
  const b = bare.listen(0, "127.0.0.1");
  await Promise.all([a, b].map((s) => new Promise((r) => s.once("listening", r))));
  process.send?.({
    mastery: (a.address() as AddressInfo).port,
    bare: (b.address() as AddressInfo).port,
    bytes: bodySample.length,
    students,
  });
}

interface CannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
}
type Cannon = (opts: Record<string, unknown>) => Promise<CannonResult>;

async function drive(): Promise<void> {
  const connections = arg("connections", 10);
  const seconds = arg("seconds", 10);
  const child = fork(fileURLToPath(import.meta.url), ["--serve", ...process.argv.slice(2)], {
    execArgv: ["--import", "tsx"],
  });
  const ports = await new Promise<{ mastery: number; bare: number; bytes: number; students: number }>((r) =>
    child.once("message", (m) => r(m as { mastery: number; bare: number; bytes: number; students: number })),
  );
  const autocannon = createRequire(import.meta.url)("autocannon") as Cannon;
  const token = await signToken(SECRET, { role: "admin", sub: "bench" });
  let n = 0;
  const run = (port: number, prefix: string, duration: number) =>
    autocannon({
      url: `http://127.0.0.1:${port}`,
      connections,
      duration,
      headers: { authorization: `Bearer ${token}` },
      requests: [
        {
          method: "GET",
          setupRequest: (req: Record<string, unknown>) => ({
            ...req,
            path: `${prefix}/student-${n++ % ports.students}`,
          }),
        },
      ],
    });
  // Warm-up (not reported): read every student once (fills the hot cache; the cold reads are
  // timed separately), then JIT both paths.
  const t0 = performance.now();
  for (let s = 0; s < ports.students; s += connections) {
    await Promise.all(
      Array.from({ length: Math.min(connections, ports.students - s) }, (_, i) =>
        fetch(`http://127.0.0.1:${ports.mastery}/mastery/student-${s + i}`, {
          headers: { authorization: `Bearer ${token}` },
        }).then((r) => r.arrayBuffer()),
      ),
    );
  }
  const coldMs = (performance.now() - t0) / ports.students;
  await run(ports.mastery, "/mastery", 2);
  await run(ports.bare, "/bare", 2);
  const bare = await run(ports.bare, "/bare", seconds);
  const mastery = await run(ports.mastery, "/mastery", seconds);
  child.kill();
  const row = (name: string, r: CannonResult) =>
    `${name.padEnd(22)} ${r.requests.average.toFixed(0).padStart(8)} req/s   p50 ${String(r.latency.p50).padStart(3)} ms   p99 ${String(r.latency.p99).padStart(3)} ms   non-2xx ${r.non2xx}   errors ${r.errors}`;
  process.stdout.write(
    `API bench: ${ports.students} students x 20 topics, body ${ports.bytes} bytes, ${connections} connections, ${seconds} s each\n` +
      `${row("bare Express (fixed)", bare)}\n${row("GET /mastery/:id", mastery)}\n` +
      `throughput ratio mastery/bare = ${(mastery.requests.average / bare.requests.average).toFixed(2)} (target >= 0.50); ` +
      `mastery p99 = ${mastery.latency.p99} ms (target <= 10 ms)\n` +
      `cold reads (cache miss, ${connections} concurrent): ${coldMs.toFixed(2)} ms per student on average\n`,
  );
}

if (process.argv.includes("--serve")) await serve();
else await drive();

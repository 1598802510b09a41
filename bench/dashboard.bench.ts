/**
 * Dashboard student page on the demo: `mastery serve --demo` in a child process over the demo store,
 * Debian's Chromium (playwright-core) at 1,400 x 900, signed in with the admin token the server
 * prints. For the students of one class with the most scored topics it measures, in one run:
 *   - page load: navigation start to `body[data-loaded]` (scores, heatmap, chart, recommendations
 *     drawn), by the page's own clock, and the API requests the page made;
 *   - anchor: the static login page (no API call) loaded the same way;
 *   - the history fetch inside the page: the batched GET /mastery/:id/history vs the former one
 *     request per topic (all in parallel, as the old page did). The page itself gets the histories
 *     with its scores (GET /mastery/:id?include=history).
 * Target (issue 14): student page <= 0.5 s on the demo. Screenshots go to test-results/.
 *
 *   npx mastery demo      # once: writes .mastery/demo/mastery.duckdb
 *   npx tsx bench/dashboard.bench.ts [--db .mastery/demo/mastery.duckdb] [--class cls00001] [--runs 7]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";
const OUT = "test-results";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts `mastery serve --demo` and resolves with the admin token it prints once listening. */
function startServer(db: string, port: number): Promise<{ child: ChildProcess; token: string }> {
  const child = spawn(
    process.execPath,
    ["bin/mastery.js", "serve", "--demo", "--no-monitor", "--db", db, "--port", String(port)],
    { env: { ...process.env, LOG_LEVEL: "warn" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  return new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error(`server did not start in 180 s:\n${err}`)), 180_000);
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /demo admin token \([^)]*\): (\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, token: m[1]! });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${err}`));
    });
  });
}

async function main(): Promise<void> {
  const db = arg("db", ".mastery/demo/mastery.duckdb");
  const classId = arg("class", "cls00001");
  const runs = Number(arg("runs", "7"));
  if (!existsSync(db)) throw new Error(`${db} not found: run \`npx mastery demo\` first (or pass --db)`);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install chromium`);
  mkdirSync(OUT, { recursive: true });
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  process.stderr.write(`starting mastery serve --demo on ${origin} ...\n`);
  const { child, token } = await startServer(db, port);
  const profile = mkdtempSync(join(tmpdir(), "mastery-bench-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    viewport: { width: 1400, height: 900 },
  });
  try {
    const auth = { authorization: `Bearer ${token}` };
    const cls = (await (await fetch(`${origin}/classes/${classId}/mastery`, { headers: auth })).json()) as {
      students: { studentKey: string; scores: Record<string, unknown> }[];
    };
    if (!Array.isArray(cls.students) || cls.students.length === 0)
      throw new Error(`class ${classId} has no students on the demo roster; pass --class`);
    const students = [...cls.students]
      .sort((a, b) => Object.keys(b.scores).length - Object.keys(a.scores).length)
      .slice(0, runs);
    const page: Page = await browser.newPage();
    let apiCalls: string[] = [];
    page.on("request", (r) => {
      const path = new URL(r.url()).pathname;
      if (!path.startsWith("/app/")) apiCalls.push(path);
    });
    await page.goto(`${origin}/app/`);
    await page.fill("#token", token);
    await page.click("#login-button");
    await page.waitForSelector("#home:not([hidden])");

    // In-page clock: ms from navigation start until `ready` matches (a MutationObserver installed
    // before any page script runs), so the driver's own round trips are not counted.
    await page.addInitScript(`
      window.__readyAt = null;
      new MutationObserver(() => {
        const sel = sessionStorage.getItem("bench.ready");
        if (window.__readyAt === null && sel && document.querySelector(sel)) window.__readyAt = performance.now();
      }).observe(document, { subtree: true, childList: true, attributes: true });
    `);
    const timed = async (path: string, ready: string): Promise<number> => {
      await page.evaluate(`sessionStorage.setItem("bench.ready", ${JSON.stringify(ready)})`);
      await page.goto(`${origin}/app/${path}`);
      await page.waitForSelector(ready);
      return (await page.evaluate("window.__readyAt ?? performance.now()")) as number;
    };
    // Warm-up: Chart.js and the modules in the browser cache, the server's topic metadata.
    await timed(`student.html?id=key:${students[0]!.studentKey}`, "body[data-loaded]");

    const anchor: number[] = [];
    const load: number[] = [];
    const calls: number[] = [];
    const topicCounts: number[] = [];
    const batched: number[] = [];
    const perTopic: number[] = [];
    for (const s of students) {
      anchor.push(await timed("index.html", "#home:not([hidden])"));
      apiCalls = [];
      const id = `key:${s.studentKey}`;
      load.push(await timed(`student.html?id=${id}`, "body[data-loaded]"));
      calls.push(apiCalls.length);
      const topics = Object.keys(s.scores);
      topicCounts.push(topics.length);
      // The history fetch alone, in the page: one batched request vs one request per topic.
      const t = (await page.evaluate(
        `(async () => {
          const h = { authorization: "Bearer " + sessionStorage.getItem("mastery.token") };
          const base = "/mastery/" + encodeURIComponent(${JSON.stringify(id)});
          const topics = ${JSON.stringify(topics)};
          let t0 = performance.now();
          await (await fetch(base + "/history", { headers: h })).json();
          const one = performance.now() - t0;
          t0 = performance.now();
          await Promise.all(topics.map((x) => fetch(base + "/" + encodeURIComponent(x) + "/history", { headers: h }).then((r) => r.json())));
          return [one, performance.now() - t0];
        })()`,
      )) as [number, number];
      batched.push(t[0]);
      perTopic.push(t[1]);
    }
    await page.goto(`${origin}/app/student.html?id=key:${students[0]!.studentKey}`);
    await page.waitForSelector("body[data-loaded]");
    await page.screenshot({ path: join(OUT, "bench-dashboard-student.png") });
    await page.goto(`${origin}/app/class.html?id=${classId}`);
    await page.waitForSelector("body[data-loaded]");
    await page.screenshot({ path: join(OUT, "bench-dashboard-class.png") });

    const f = (x: number) => x.toFixed(0).padStart(6);
    process.stdout.write(
      `dashboard on the demo (${db}), class ${classId}, ${students.length} students, ` +
        `topics per student median ${median(topicCounts)} (max ${Math.max(...topicCounts)}); shared machine\n` +
        `  login page (anchor, no API)     median ${f(median(anchor))} ms\n` +
        `  student page, to data-loaded    median ${f(median(load))} ms  (max ${f(Math.max(...load))} ms; ` +
        `${(median(load) / median(anchor)).toFixed(1)}x anchor; target <= 500 ms)\n` +
        `  API requests per student page   ${[...new Set(calls)].join(", ")}\n` +
        `  history: 1 batched request      median ${f(median(batched))} ms\n` +
        `  history: 1 request per topic    median ${f(median(perTopic))} ms  ` +
        `(${(median(perTopic) / median(batched)).toFixed(1)}x the batched one)\n` +
        `  screenshots: ${OUT}/bench-dashboard-student.png, ${OUT}/bench-dashboard-class.png\n`,
    );
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    child.kill("SIGTERM");
  }
}

await main();

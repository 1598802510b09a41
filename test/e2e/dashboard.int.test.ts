/**
 * End to end: the /app dashboard in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core) over a real app and a store built by the batch pipeline from 200 synthetic
 * students. Every page only calls the JSON API, so the numbers on screen are compared with the API's.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import type { AppHandle } from "../../serving/app.ts";
import { runPipeline } from "../../serving/pipeline.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { PSEUDO_KEY, testApp, token } from "../serving/appFixture.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = "test-artifacts";
const STUDENTS = 200;
const rawId = (i: number) => `stu-${String(i).padStart(6, "0")}`;
/** The generated student with the most scored topics (set in beforeAll), and another student. */
let STUDENT = "";
let OTHER_CHILD = "";

let dir: string;
let store: DuckStore;
let h: AppHandle;
let server: Server;
let origin: string;
let browser: BrowserContext;
let classId: string;
const pageErrors: string[] = [];

interface TopicBody {
  topicId: string;
  score: number;
  scoreSource: string;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mastery-e2e-"));
  mkdirSync(ARTIFACTS, { recursive: true });
  store = await DuckStore.open(":memory:");
  const pseudonymizer = new Pseudonymizer(PSEUDO_KEY);
  const dataDir = join(dir, "data");
  await runPipeline({
    store,
    pseudonymizer,
    dataDir,
    generate: {
      students: STUDENTS,
      topics: 12,
      days: 28,
      seed: 7,
      start: "2026-01-05",
      eventsPerDay: 4,
      truthEvery: 0,
      outDir: dataDir,
      workers: 0,
    },
  });
  // The clock sits just after the generated month, so an override lands in the heatmap's last week.
  h = await testApp(store, {
    now: () => new Date("2026-02-03T12:00:00Z"),
    artifactBase: join(dir, "artifacts"),
    modelCacheDir: join(dir, "models"),
  });
  server = createServer(h.app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const topicCounts = new Map(
    (
      await store.all<{ student_key: string; n: bigint }>(
        "SELECT student_key, count(DISTINCT topic_id) AS n FROM student_mastery GROUP BY student_key",
      )
    ).map((r) => [r.student_key, Number(r.n)]),
  );
  let best = -1;
  for (let i = 0; i < STUDENTS; i++) {
    const n = topicCounts.get(pseudonymizer.studentKey(rawId(i))) ?? 0;
    if (n > best) {
      best = n;
      STUDENT = rawId(i);
    }
  }
  OTHER_CHILD = STUDENT === rawId(0) ? rawId(1) : rawId(0);
  const row = await store.one<{ class_id: string }>(
    "SELECT class_id FROM raw_events WHERE student_key = $1 AND class_id IS NOT NULL LIMIT 1",
    [pseudonymizer.studentKey(STUDENT)],
  );
  classId = row!.class_id;
  browser = await chromium.launchPersistentContext(join(dir, "chromium-profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
  });
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A new tab (its own sessionStorage) signed in with `tok` through the login form. */
async function signedIn(tok: string): Promise<Page> {
  const page = await browser.newPage();
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(`${origin}/app/`);
  await page.fill("#token", tok);
  await page.click("#login-button");
  await page.waitForSelector("#home:not([hidden])");
  return page;
}

async function open(page: Page, path: string): Promise<void> {
  await page.goto(`${origin}/app/${path}`);
  await page.waitForSelector("body[data-loaded]");
}

async function apiGet<T>(path: string, tok: string): Promise<T> {
  const res = await fetch(`${origin}${path}`, { headers: { authorization: `Bearer ${tok}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });

describe("dashboard (headless Chromium)", () => {
  it("student view: one heatmap row per topic, scores and factors equal to the API's", async () => {
    const admin = await token({ role: "admin", sub: "root" });
    const api = await apiGet<{ topics: (TopicBody & { explanation: { factors: { name: string }[] } })[] }>(
      `/mastery/${STUDENT}`,
      admin,
    );
    expect(api.topics.length).toBeGreaterThan(3);
    const page = await signedIn(admin);
    await open(page, `student.html?id=${STUDENT}`);
    expect(await page.getAttribute("body", "data-loaded")).toBe("true");
    expect(await page.locator("#heatmap tbody tr").count()).toBe(api.topics.length);
    expect(await page.locator("#topics tbody tr").count()).toBe(api.topics.length);
    for (const t of api.topics) {
      const row = page.locator(`#topics tbody tr[data-topic="${t.topicId}"]`);
      expect(Number(await row.locator("td.score").getAttribute("data-score"))).toBe(t.score);
      expect(await row.locator("td.score").textContent()).toBe(t.score.toFixed(3));
      expect(await row.locator("td.source").textContent()).toBe(t.scoreSource);
      const why = (await row.locator("td.why").textContent()) ?? "";
      for (const f of t.explanation.factors) expect(why).toContain(f.name);
    }
    // The heatmap's last week shows each topic's latest served-source score from GET .../history.
    const first = api.topics[0]!;
    const hist = await apiGet<{ history: { score: number; scoreSource: string; asOf: string }[] }>(
      `/mastery/${STUDENT}/${first.topicId}/history`,
      admin,
    );
    const own = hist.history.filter((e) => e.scoreSource === first.scoreSource);
    const latest = own.sort((a, b) => a.asOf.localeCompare(b.asOf)).at(-1)!;
    const lastCell = page.locator(`#heatmap tbody tr[data-topic="${first.topicId}"] td`).last();
    expect(Number(await lastCell.getAttribute("data-score"))).toBe(latest.score);
    expect(await page.locator("#history-chart").isVisible()).toBe(true);
    const recs = await apiGet<{ recommendations: { topicId: string }[] }>(
      `/recommendations/${STUDENT}`,
      admin,
    );
    const items = page.locator("#recommendations li[data-topic]");
    const shown: (string | null)[] = [];
    for (let i = 0; i < (await items.count()); i++) shown.push(await items.nth(i).getAttribute("data-topic"));
    expect(shown).toEqual(recs.recommendations.map((r) => r.topicId));
    await shot(page, "dashboard-student.png");
    await page.close();
  });

  it("class view for the class's teacher: one row per student, below-threshold list equal to the API's", async () => {
    const teacher = await token({ role: "teacher", sub: "t1", classes: [classId] });
    const api = await apiGet<{ students: { studentKey: string; below: string[] }[]; threshold: number }>(
      `/classes/${classId}/mastery`,
      teacher,
    );
    expect(api.students.length).toBeGreaterThan(5);
    const page = await signedIn(teacher);
    await open(page, `class.html?id=${classId}`);
    expect(await page.locator("#class-heatmap tbody tr").count()).toBe(api.students.length);
    const belowApi = api.students.filter((s) => s.below.length > 0);
    expect(await page.locator("#below-list li").count()).toBe(belowApi.length);
    const cellsBelow = belowApi.reduce((n, s) => n + s.below.length, 0);
    expect(await page.locator("#class-heatmap td.below").count()).toBe(cellsBelow);
    await shot(page, "dashboard-class.png");
    await page.close();
  });

  it("a teacher's override is shown at once, to the teacher and to the student", async () => {
    const teacher = await token({ role: "teacher", sub: "t1", classes: [classId] });
    const page = await signedIn(teacher);
    await open(page, `student.html?id=${STUDENT}`);
    const topic = (await page.locator("#topics tbody tr").first().getAttribute("data-topic"))!;
    await page.selectOption("#override-topic", topic);
    await page.fill("#override-mastery", "0.93");
    await page.fill("#override-reason", "oral exam: solid understanding");
    await page.click("#override-submit");
    await page.waitForSelector("#override-status.ok");
    const row = page.locator(`#topics tbody tr[data-topic="${topic}"]`);
    expect(await row.locator("td.source").textContent()).toBe("teacher_override");
    expect(Number(await row.locator("td.score").getAttribute("data-score"))).toBe(0.93);
    const lastCell = page.locator(`#heatmap tbody tr[data-topic="${topic}"] td`).last();
    expect(Number(await lastCell.getAttribute("data-score"))).toBe(0.93);
    // The override replaced the model's version in the served series: marked as a version change.
    await page.selectOption("#topic-select", topic);
    expect(await page.locator("#version-changes li").last().textContent()).toMatch(
      /^2026-02-03: \S+ → teacher:[0-9a-f-]{36} \(teacher_override\)$/,
    );
    await shot(page, "dashboard-override.png");
    await page.close();

    const student = await signedIn(await token({ role: "student", sub: STUDENT }));
    await open(student, `student.html?id=${STUDENT}`);
    const own = student.locator(`#topics tbody tr[data-topic="${topic}"]`);
    expect(await own.locator("td.source").textContent()).toBe("teacher_override");
    expect(await own.locator("td.score").textContent()).toBe("0.930");
    expect(await student.locator("#override").isHidden()).toBe(true);
    await student.close();
  });

  it("a parent cannot open another child's page; a student cannot open the class view", async () => {
    const parent = await signedIn(await token({ role: "parent", sub: "p1", children: [OTHER_CHILD] }));
    await open(parent, `student.html?id=${STUDENT}`);
    expect(await parent.getAttribute("body", "data-loaded")).toBe("error");
    expect(await parent.locator("#error").textContent()).toBe(
      "403 forbidden: a parent may only see their children's data",
    );
    expect(await parent.locator("#content").isHidden()).toBe(true);
    await shot(parent, "dashboard-parent-403.png");
    await open(parent, `student.html?id=${OTHER_CHILD}`);
    expect(await parent.getAttribute("body", "data-loaded")).toBe("true");
    await parent.close();

    const student = await signedIn(await token({ role: "student", sub: STUDENT }));
    await open(student, `class.html?id=${classId}`);
    expect(await student.locator("#error").textContent()).toBe(
      '403 forbidden: role "student" may not see a class view',
    );
    expect(await student.locator("#class-heatmap tbody tr").count()).toBe(0);
    await shot(student, "dashboard-student-class-403.png");
    await student.close();
  });

  it("models, experiments and data-quality pages render for an admin; no page threw", async () => {
    const page = await signedIn(await token({ role: "admin", sub: "root" }));
    await open(page, "models.html");
    expect(await page.getAttribute("body", "data-loaded")).toBe("true");
    expect(await page.locator("#no-models").count()).toBe(1);
    await open(page, "experiments.html");
    expect(await page.getAttribute("body", "data-loaded")).toBe("true");
    await open(page, "quality.html");
    expect(await page.getAttribute("body", "data-loaded")).toBe("true");
    const q = await apiGet<{ totals: { events: number } }>(
      "/quality",
      await token({ role: "admin", sub: "root" }),
    );
    expect(await page.getAttribute("#totals", "data-events")).toBe(String(q.totals.events));
    expect(await page.locator("#freshness tbody tr").count()).toBeGreaterThan(0);
    await shot(page, "dashboard-quality.png");
    await page.close();
    expect(pageErrors).toEqual([]);
  });
});

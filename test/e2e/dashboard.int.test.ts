/**
 * End to end: the /app dashboard in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core) over a real app and a store built by the batch pipeline from 200 synthetic
 * students. Every page only calls the JSON API, so the numbers on screen are compared with the API's.
 * Screenshots (1,400 x 900, the window the pages are checked at) go to test-results/ (gitignored).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
const ARTIFACTS = "test-results";
const VIEWPORT = { width: 1400, height: 900 };
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
/** Every response with status 404 (a missing favicon, script or route) on any page. */
const notFound: string[] = [];

interface TopicBody {
  topicId: string;
  asOf: string;
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
    viewport: VIEWPORT,
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
  page.on("response", (r) => {
    if (r.status() === 404) notFound.push(r.url());
  });
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

/** What the 1,400 x 900 window shows (and, with full, the whole page). */
const shot = async (page: Page, name: string, full = false) => {
  await page.screenshot({ path: join(ARTIFACTS, name) });
  if (full)
    await page.screenshot({ path: join(ARTIFACTS, name.replace(/\.png$/, "-full.png")), fullPage: true });
};

/** Monday 00:00 UTC of the week holding `iso`, as YYYY-MM-DD (the heatmap's column labels). */
const weekLabel = (iso: string): string => {
  const d = new Date(iso);
  const monday =
    Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - ((d.getUTCDay() + 6) % 7) * 86_400_000;
  return new Date(monday).toISOString().slice(0, 10);
};

/** The page's horizontal overflow: > 0 when something is wider than the window. */
const overflowX = (page: Page) =>
  page.evaluate(
    "document.documentElement.scrollWidth - document.documentElement.clientWidth",
  ) as Promise<number>;

interface HistoryBody {
  score: number;
  scoreSource: string;
  asOf: string;
  recordedAt: string;
}

describe("dashboard (headless Chromium)", () => {
  it("student view: two API requests whatever the topic count; one heatmap row per topic, scores and factors equal to the API's", async () => {
    const admin = await token({ role: "admin", sub: "root" });
    const api = await apiGet<{ topics: (TopicBody & { explanation: { factors: { name: string }[] } })[] }>(
      `/mastery/${STUDENT}`,
      admin,
    );
    expect(api.topics.length).toBeGreaterThan(3);
    const page = await signedIn(admin);
    const apiCalls: string[] = [];
    page.on("request", (r) => {
      const path = new URL(r.url()).pathname;
      if (!path.startsWith("/app/")) apiCalls.push(path);
    });
    const t0 = Date.now();
    await open(page, `student.html?id=${STUDENT}`);
    const loadMs = Date.now() - t0;
    // Scores with every topic's history (?include=history), recommendations: not one call per topic.
    expect(apiCalls.sort()).toEqual([`/mastery/${STUDENT}`, `/recommendations/${STUDENT}`].sort());
    writeFileSync(
      join(ARTIFACTS, "dashboard-student-load.json"),
      JSON.stringify({ topics: api.topics.length, apiCalls: apiCalls.length, loadMs }),
    );
    expect(await page.getAttribute("body", "data-loaded")).toBe("true");
    expect(await page.locator("#heatmap tbody tr").count()).toBe(api.topics.length);
    expect(await page.locator("#topics tbody tr").count()).toBe(api.topics.length);
    for (const t of api.topics) {
      const row = page.locator(`#topics tbody tr[data-topic="${t.topicId}"]`);
      expect(Number(await row.locator("td.score").getAttribute("data-score"))).toBe(t.score);
      expect(await row.locator("td.score").textContent()).toBe(t.score.toFixed(3));
      expect(await row.locator("td.source").textContent()).toBe(t.scoreSource);
      const why = (await row.locator("td.why").textContent()) ?? "";
      for (const f of t.explanation.factors) expect(why).toContain((f as { label?: string }).label ?? f.name);
    }
    // The heatmap ends at the student's last activity (not today): its last column is the week of
    // the latest as-of, and every topic's last cell is exactly the score GET /mastery serves.
    const last = api.topics
      .map((t) => (t as TopicBody & { asOf: string }).asOf)
      .sort()
      .at(-1)!;
    const heads = await page.locator("#heatmap thead th").allTextContents();
    expect(heads.at(-1)).toBe(weekLabel(last));
    expect(heads.length).toBeGreaterThan(2);
    for (const t of api.topics) {
      const lastCell = page.locator(`#heatmap tbody tr[data-topic="${t.topicId}"] td`).last();
      expect(Number(await lastCell.getAttribute("data-score"))).toBe(t.score);
    }
    // Not a wall of faded carry-overs: every week column has a value recorded in that week.
    const weeks = heads.slice(1);
    for (let i = 0; i < weeks.length; i++) {
      const fresh = page.locator(`#heatmap tbody td[data-week="${weeks[i]}"]:not(.carried)`);
      expect(await fresh.count(), `week ${weeks[i]}`).toBeGreaterThan(0);
    }
    expect(await page.locator("#history-chart").isVisible()).toBe(true);
    const recs = await apiGet<{ recommendations: { topicId: string }[] }>(
      `/recommendations/${STUDENT}`,
      admin,
    );
    const items = page.locator("#recommendations li[data-topic]");
    const shown: (string | null)[] = [];
    for (let i = 0; i < (await items.count()); i++) shown.push(await items.nth(i).getAttribute("data-topic"));
    expect(shown).toEqual(recs.recommendations.map((r) => r.topicId));
    await shot(page, "dashboard-student.png", true);
    await page.close();
  });

  it("student view as of a chosen day: the heatmap ends that week with the value recorded by then", async () => {
    const admin = await token({ role: "admin", sub: "root" });
    const api = await apiGet<{ topics: TopicBody[] }>(`/mastery/${STUDENT}`, admin);
    const hist = await apiGet<{ topics: { topicId: string; history: HistoryBody[] }[] }>(
      `/mastery/${STUDENT}/history`,
      admin,
    );
    const asOf = "2026-01-18"; // a Sunday in the generated month
    const page = await signedIn(admin);
    await open(page, `student.html?id=${STUDENT}&as_of=${asOf}`);
    const heads = await page.locator("#heatmap thead th").allTextContents();
    expect(heads.at(-1)).toBe("2026-01-12");
    const end = `${asOf}T23:59:59.999Z`;
    let checked = 0;
    for (const t of api.topics) {
      const own = hist.topics
        .find((x) => x.topicId === t.topicId)!
        .history.filter((e) => e.scoreSource === t.scoreSource && e.asOf <= end)
        .sort((a, b) => a.asOf.localeCompare(b.asOf) || a.recordedAt.localeCompare(b.recordedAt));
      const cell = page.locator(`#heatmap tbody tr[data-topic="${t.topicId}"] td`).last();
      if (own.length === 0) {
        expect(await cell.getAttribute("data-score")).toBeNull();
        continue;
      }
      expect(Number(await cell.getAttribute("data-score"))).toBe(own.at(-1)!.score);
      checked++;
    }
    expect(checked).toBeGreaterThan(0);
    // A student without any score: one sentence, no empty tables or chart.
    await open(page, "student.html?id=stu-never-seen");
    expect(await page.getAttribute("body", "data-loaded")).toBe("true");
    expect(await page.locator("#no-topics").isVisible()).toBe(true);
    for (const id of ["#topics-section", "#heatmap-section", "#history-section"])
      expect(await page.locator(id).isHidden(), id).toBe(true);
    await page.close();
  });

  it("class view for the class's teacher: one row per student, below-threshold list equal to the API's", async () => {
    const teacher = await token({ role: "teacher", sub: "t1", classes: [classId] });
    const api = await apiGet<{
      students: { studentKey: string; below: string[]; scores: Record<string, unknown> }[];
      threshold: number;
    }>(`/classes/${classId}/mastery`, teacher);
    expect(api.students.length).toBeGreaterThan(5);
    const page = await signedIn(teacher);
    await open(page, `class.html?id=${classId}`);
    expect(await page.locator("#class-heatmap tbody tr").count()).toBe(api.students.length);
    const belowApi = api.students.filter((s) => s.below.length > 0);
    expect(await page.locator("#below-list li").count()).toBe(belowApi.length);
    const cellsBelow = belowApi.reduce((n, s) => n + s.below.length, 0);
    expect(await page.locator("#class-heatmap td.below").count()).toBe(cellsBelow);
    // Fits the 1,400 px window: the wide students x topics table scrolls inside its own box.
    expect(await overflowX(page)).toBe(0);
    await shot(page, "dashboard-class.png");
    // Students are links (by pseudonym) the class's teacher may follow (one other than STUDENT, whose
    // scores the override test below checks).
    const studentKey = (raw: string) => new Pseudonymizer(PSEUDO_KEY).studentKey(raw);
    const first = api.students.find(
      (s) => s.studentKey !== studentKey(STUDENT) && Object.keys(s.scores).length > 0,
    )!;
    await page.click(`#class-heatmap tbody tr[data-student="${first.studentKey}"] a`);
    await page.waitForSelector("body[data-loaded]");
    expect(await page.getAttribute("body", "data-loaded")).toBe("true");
    const scored = Object.keys(first.scores).length;
    expect(await page.locator("#topics tbody tr").count()).toBe(scored);
    expect(await overflowX(page)).toBe(0);
    await shot(page, "dashboard-class-student.png");
    // The override form works on a page opened by key (POST /feedback with studentId key:...).
    const topic = Object.keys(first.scores).sort()[0]!;
    await page.selectOption("#override-topic", topic);
    await page.fill("#override-mastery", "0.42");
    await page.fill("#override-reason", "class page check");
    await page.click("#override-submit");
    await page.waitForSelector("#override-status.ok");
    const after = await apiGet<{ students: { studentKey: string; scores: Record<string, TopicBody> }[] }>(
      `/classes/${classId}/mastery`,
      teacher,
    );
    const row = after.students.find((s) => s.studentKey === first.studentKey)!;
    expect(row.scores[topic]).toMatchObject({ score: 0.42, scoreSource: "teacher_override" });
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
    // Two versions with lineage (a model name the server does not serve, so scores are unchanged).
    const modelDir = join(dir, "lineage-model");
    mkdirSync(modelDir, { recursive: true });
    writeFileSync(join(modelDir, "model.json"), JSON.stringify({ kind: "elo", featureNames: ["a", "b"] }));
    const data = { from: "2026-01-05T00:00:00Z", to: "2026-02-01T00:00:00Z", file: "train.csv", rows: 4321 };
    await h.ctx.registry.register({
      name: "e2e-archive",
      dir: modelDir,
      metrics: { auc: 0.7412 },
      data: { ...data, sha256: "ab".repeat(32) },
      codeCommit: "0123456789abcdef0123456789abcdef01234567",
      actor: "e2e",
    });
    await h.ctx.registry.register({ name: "e2e-archive", dir: modelDir, parent: "1", actor: "e2e" });
    await open(page, "models.html");
    const v1 = page.locator('section[data-model="e2e-archive"] tr[data-version="1"] table.lineage');
    expect(await v1.locator('tr[data-field="Data window"] td').textContent()).toBe(
      "2026-01-05T00:00:00.000Z → 2026-02-01T00:00:00.000Z",
    );
    expect(await v1.locator('tr[data-field="Data file"] td').textContent()).toBe("train.csv (4321 rows)");
    expect(await v1.locator('tr[data-field="Code commit"] td').textContent()).toBe("0123456789…");
    const v2 = page.locator('section[data-model="e2e-archive"] tr[data-version="2"] table.lineage');
    expect(await v2.locator('tr[data-field="Parent"] td').textContent()).toBe("e2e-archive v1");
    expect(await page.locator("body").textContent()).not.toContain('{"');
    expect(await overflowX(page)).toBe(0);
    await shot(page, "dashboard-models.png");
    // An experiment nobody has been exposed to: an empty state, no table of dashes.
    await h.ctx.experiments.create({
      id: "e2e-empty",
      name: "nobody exposed",
      arms: [
        { name: "control", model: { name: "e2e-archive", version: 1 }, share: 0.5 },
        { name: "treatment", model: { name: "e2e-archive", version: 2 }, share: 0.5 },
      ],
      startAt: "2026-01-20T00:00:00Z",
      status: "stopped",
    });
    await open(page, "experiments.html");
    expect(await page.getAttribute("body", "data-loaded")).toBe("true");
    const empty = page.locator('section[data-experiment="e2e-empty"]');
    expect(await empty.locator(".no-exposures").count()).toBe(1);
    expect(await empty.locator("table").count()).toBe(0);
    expect(await empty.textContent()).not.toMatch(/df -1|df = -1/);
    await shot(page, "dashboard-experiments-empty.png");
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
    // No 404 on any page (the favicon included); /favicon.ico (asked by /docs and the like) leads to it.
    expect(notFound).toEqual([]);
    const icon = await fetch(`${origin}/favicon.ico`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get("content-type")).toMatch(/^image\/svg\+xml/);
  });
});

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import request from "supertest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { parseThresholds } from "../../serving/alerts.ts";
import { type AppDeps, type AppHandle, createApp } from "../../serving/app.ts";
import { signToken, type TokenClaims } from "../../serving/auth.ts";
import { DuckStore } from "../../storage/duckdb.ts";

export const SECRET = "test-secret-test-secret-test-secret-0123";
export const PSEUDO_KEY = "test-pseudonym-key-0123456789";

/** T1 <- T2 <- T3 (T3 needs T2 needs T1), all in chapter C1 / subject S1 / course K1; T4 alone in C2. */
export async function storeWithTopics(): Promise<DuckStore> {
  const store = await DuckStore.open(":memory:");
  const topics: [string, string, string[], number][] = [
    ["T1", "C1", [], 10],
    ["T2", "C1", ["T1"], 10],
    ["T3", "C1", ["T2"], 20],
    ["T4", "C2", [], 10],
  ];
  for (const [id, chapter, prereq, len] of topics) {
    await store.run(
      "INSERT INTO topics VALUES ($1, $1, $2, 'S1', 'K1', 0, from_json($3, '[\"VARCHAR\"]'), $4)",
      [id, chapter, JSON.stringify(prereq), len],
    );
  }
  return store;
}

export function quiz(
  id: string,
  student: string,
  topic: string,
  correct: boolean,
  minute: number,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const ts = new Date(Date.UTC(2026, 0, 5, 10, minute)).toISOString();
  return {
    event_id: id,
    type: "quiz_attempt",
    student_id: student,
    timestamp: ts,
    topic_id: topic,
    question_id: `${topic}-q${minute % 5}`,
    is_correct: correct,
    class_id: student === "s2" ? "B" : "A",
    school_id: "SCH",
    grade: 7,
    ...extra,
  };
}

export async function testApp(store: DuckStore, over: Partial<AppDeps> = {}): Promise<AppHandle> {
  return createApp({
    store,
    pseudonymizer: new Pseudonymizer(PSEUDO_KEY),
    jwtSecret: SECRET,
    logger: pino({ level: "silent" }),
    defaultMetrics: false,
    thresholds: parseThresholds({ default: { at_risk: 0.35 } }, {}),
    config: { rateLimit: { windowMs: 60_000, limit: 0 } },
    ...over,
  });
}

export const token = (claims: TokenClaims, exp: string | number = "1h"): Promise<string> =>
  signToken(SECRET, claims, exp);

/**
 * Loads class rosters (class -> raw student ids) through PUT /roster/classes/:id with an admin token:
 * teacher access comes only from rosters, not from events' class_id.
 */
export async function putRosters(h: AppHandle, classes: Record<string, string[]>): Promise<void> {
  const admin = `Bearer ${await token({ role: "admin", sub: "root" })}`;
  for (const [classId, students] of Object.entries(classes)) {
    const res = await request(h.app)
      .put(`/roster/classes/${encodeURIComponent(classId)}`)
      .set("authorization", admin)
      .send({ students });
    if (res.status !== 200) throw new Error(`PUT /roster/classes/${classId}: ${res.status} ${res.text}`);
  }
}

/** An app over storeWithTopics() with its own registry folders, the given events posted by an admin. */
export interface RegistryApp {
  store: DuckStore;
  h: AppHandle;
  admin: string;
  /** Scratch folder for training outputs (model dirs, data files). */
  modelDir: string;
}

export async function registryApp(
  label: string,
  events: readonly Record<string, unknown>[],
): Promise<RegistryApp> {
  const artifacts = mkdtempSync(join(tmpdir(), `${label}-artifacts-`));
  const modelDir = mkdtempSync(join(tmpdir(), `${label}-models-`));
  const store = await storeWithTopics();
  const h = await testApp(store, { artifactBase: artifacts, modelCacheDir: join(modelDir, "cache") });
  const admin = await token({ role: "admin", sub: "root" });
  const res = await request(h.app).post("/events").set("authorization", `Bearer ${admin}`).send(events);
  if (res.status !== 200) throw new Error(`POST /events in the fixture: ${res.status} ${res.text}`);
  return { store, h, admin, modelDir };
}

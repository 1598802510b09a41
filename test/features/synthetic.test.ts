import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FILE_COLUMNS } from "../../features/synthetic/csvSink.ts";
import { type GenerateOptions, generateSynthetic } from "../../features/synthetic/generate.ts";

const base: Omit<GenerateOptions, "outDir"> = {
  students: 300,
  topics: 60,
  days: 28,
  seed: 42,
  start: "2026-09-01",
  eventsPerDay: 4,
  truthEvery: 1,
  workers: 0,
};

const dirs: string[] = [];
function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), "mastery-synth-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function hashDir(dir: string): string {
  const h = createHash("sha256");
  for (const f of readdirSync(dir).sort()) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest("hex");
}

type Table = { header: string[]; rows: string[][] };
function readCsv(dir: string, file: string): Table {
  const lines = readFileSync(join(dir, file), "utf8").split("\n");
  expect(lines.pop()).toBe(""); // file ends with a newline
  const header = lines[0]!.split(",");
  return { header, rows: lines.slice(1).map((l) => l.split(",")) };
}
const col = (t: Table, name: string) => {
  const i = t.header.indexOf(name);
  if (i < 0) throw new Error(`no column ${name}`);
  return i;
};

function pearson(x: number[], y: number[]): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]! / n;
    my += y[i]! / n;
  }
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
    syy += (y[i]! - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

let dir = "";
let truth = new Map<string, number>(); // student|topic|day -> latent
beforeAll(async () => {
  dir = freshDir();
  await generateSynthetic({ ...base, outDir: dir });
  const t = readCsv(dir, "ground_truth.csv");
  truth = new Map(t.rows.map((r) => [`${r[0]}|${r[1]}|${r[2]}`, Number(r[3])]));
});

describe("synthetic generator: determinism", () => {
  it("same seed gives byte-identical files; a different seed gives different files", async () => {
    const again = freshDir();
    await generateSynthetic({ ...base, outDir: again });
    expect(hashDir(again)).toBe(hashDir(dir));
    const other = freshDir();
    await generateSynthetic({ ...base, seed: 43, outDir: other });
    expect(hashDir(other)).not.toBe(hashDir(dir));
  });

  it("output does not depend on the number of worker threads", async () => {
    const opts = { ...base, students: 2300, days: 5, truthEvery: 0 };
    const single = freshDir();
    await generateSynthetic({ ...opts, outDir: single });
    const threaded = freshDir();
    await generateSynthetic({ ...opts, workers: 2, outDir: threaded });
    expect(hashDir(threaded)).toBe(hashDir(single));
  });
});

describe("synthetic generator: contract", () => {
  const EVENT_FILES = [
    ["quiz_attempts.csv", "quiz_attempt"],
    ["assignments.csv", "assignment"],
    ["videos.csv", "video"],
    ["practice.csv", "practice"],
    ["chatbot.csv", "chatbot"],
  ] as const;

  it("headers, manifest counts, ids, types, timestamps and value ranges hold on every row", () => {
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    const topics = JSON.parse(readFileSync(join(dir, "topics.json"), "utf8")) as { topic_id: string }[];
    const topicIds = new Set(topics.map((t) => t.topic_id));
    const eventIds = new Set<string>();
    const membership = new Map<string, string>(); // student -> school|class|grade
    const windowStart = Date.parse("2026-09-01T00:00:00Z");
    const windowEnd = Date.parse("2026-09-28T23:59:59Z");
    const tsPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
    let events = 0;
    const violations: string[] = [];
    for (const [file, type] of EVENT_FILES) {
      const t = readCsv(dir, file);
      expect(t.header).toEqual([...FILE_COLUMNS[file]]);
      expect(t.rows.length).toBe(manifest.files[file].rows);
      expect(t.rows.length).toBeGreaterThan(0);
      events += t.rows.length;
      const index = new Map(t.header.map((h, i) => [h, i]));
      const get = (r: string[], name: string) => r[index.get(name)!]!;
      const check = (ok: boolean, what: string) => {
        if (!ok && violations.length < 20) violations.push(`${file}: ${what}`);
      };
      for (const r of t.rows) {
        check(r.length === t.header.length, "column count");
        check(get(r, "type") === type, "type");
        const id = get(r, "event_id");
        check(!eventIds.has(id), "duplicate event_id");
        eventIds.add(id);
        check(/^stu-\d{6}$/.test(get(r, "student_id")), "student_id format");
        const ts = get(r, "timestamp");
        check(tsPattern.test(ts), "timestamp format");
        const ms = Date.parse(ts);
        check(ms >= windowStart && ms <= windowEnd, "timestamp outside the window");
        const grade = Number(get(r, "grade"));
        check(grade >= 6 && grade <= 12, "grade");
        const member = `${get(r, "school_id")}|${get(r, "class_id")}|${grade}`;
        const seen = membership.get(get(r, "student_id"));
        if (seen === undefined) membership.set(get(r, "student_id"), member);
        else check(member === seen, "student changed school/class/grade");
        if (type === "assignment") {
          for (const tid of get(r, "topic_ids").split("|")) check(topicIds.has(tid), "unknown topic id");
          const score = Number(get(r, "score_pct"));
          check(score >= 0 && score <= 100, "score_pct range");
          check(/^as-cls\d{5}-ch\d{3}-\d+$/.test(get(r, "assignment_id")), "assignment_id format");
        } else {
          check(topicIds.has(get(r, "topic_id")), "unknown topic id");
        }
        if (type === "quiz_attempt") {
          check(get(r, "is_correct") === "true" || get(r, "is_correct") === "false", "is_correct");
          check(get(r, "question_id").startsWith(`${get(r, "topic_id")}-q`), "question of another topic");
          check(Number(get(r, "time_spent_sec")) > 0, "time_spent_sec");
          const attempt = Number(get(r, "attempt_number"));
          check(attempt >= 1 && attempt <= 3, "attempt_number");
          check(Number(get(r, "hints_used")) >= 0, "hints_used");
        } else if (type === "video") {
          const pct = Number(get(r, "watch_pct"));
          check(pct >= 0 && pct <= 100, "watch_pct range");
          check(Number(get(r, "watch_duration_sec")) >= 0, "watch_duration_sec");
          check(Number(get(r, "rewind_count")) >= 0, "rewind_count");
        } else if (type === "practice") {
          const attempts = Number(get(r, "attempts"));
          const correct = Number(get(r, "correct_count"));
          check(attempts >= 1, "attempts");
          check(correct >= 0 && correct <= attempts, "correct_count > attempts");
        } else if (type === "chatbot") {
          const help = Number(get(r, "help_requests"));
          const resolved = Number(get(r, "resolved_count"));
          check(help >= 1, "help_requests");
          check(resolved >= 0 && resolved <= help, "resolved_count > help_requests");
        }
      }
    }
    expect(violations).toEqual([]);
    expect(manifest.counts.events).toBe(events);
    expect(membership.size).toBe(base.students);
    // roster.csv (the LMS's class lists) puts every student in the class their events carry.
    const roster = readCsv(dir, "roster.csv");
    expect(roster.header).toEqual(["class_id", "student_id"]);
    expect(roster.rows.length).toBe(manifest.files["roster.csv"].rows);
    expect(roster.rows.length).toBe(base.students);
    for (const [classId, studentId] of roster.rows) {
      expect(membership.get(studentId!)?.split("|")[1]).toBe(classId);
    }
    // the type mix the generator promises (quiz ~60%, video ~15%, practice ~12%, assignment ~5%, chatbot ~8%)
    const share = (k: string) => manifest.counts[k] / events;
    expect(share("quiz_attempt")).toBeGreaterThan(0.55);
    expect(share("quiz_attempt")).toBeLessThan(0.65);
    expect(share("video")).toBeGreaterThan(0.11);
    expect(share("video")).toBeLessThan(0.19);
    expect(share("practice")).toBeGreaterThan(0.09);
    expect(share("practice")).toBeLessThan(0.15);
    expect(share("assignment")).toBeGreaterThan(0.03);
    expect(share("assignment")).toBeLessThan(0.07);
    expect(share("chatbot")).toBeGreaterThan(0.06);
    expect(share("chatbot")).toBeLessThan(0.1);
    // volume: students x days x events-per-day within 15%
    expect(events / (base.students * base.days * base.eventsPerDay)).toBeGreaterThan(0.85);
    expect(events / (base.students * base.days * base.eventsPerDay)).toBeLessThan(1.15);
  });

  it("topics.json is a course > subject > chapter > topic tree whose prerequisites form a DAG", () => {
    const topics = JSON.parse(readFileSync(join(dir, "topics.json"), "utf8")) as {
      topic_id: string;
      chapter_id: string;
      subject_id: string;
      course_id: string;
      difficulty_estimate: number;
      prerequisites: string[];
      content_length: number;
    }[];
    expect(topics.length).toBe(base.topics);
    const byId = new Map(topics.map((t) => [t.topic_id, t]));
    const chapterSubject = new Map<string, string>();
    for (const t of topics) {
      expect(t.topic_id).toMatch(/^t\d{4}$/);
      expect(t.chapter_id).toMatch(/^ch\d{3}$/);
      expect(t.subject_id).toMatch(/^sub\d{2}$/);
      expect(t.course_id).toBe("c1");
      expect(t.difficulty_estimate >= 0 && t.difficulty_estimate <= 1).toBe(true);
      expect(Number.isInteger(t.content_length) && t.content_length > 0).toBe(true);
      const s = chapterSubject.get(t.chapter_id) ?? t.subject_id;
      expect(s).toBe(t.subject_id); // a chapter belongs to one subject
      chapterSubject.set(t.chapter_id, s);
      for (const p of t.prerequisites) expect(byId.get(p)?.subject_id).toBe(t.subject_id);
    }
    // Kahn's algorithm: every topic gets removed iff there is no cycle
    const indegree = new Map(topics.map((t) => [t.topic_id, t.prerequisites.length]));
    const dependents = new Map<string, string[]>();
    for (const t of topics)
      for (const p of t.prerequisites) dependents.set(p, [...(dependents.get(p) ?? []), t.topic_id]);
    const queue = topics.filter((t) => t.prerequisites.length === 0).map((t) => t.topic_id);
    let removed = 0;
    while (queue.length > 0) {
      const id = queue.pop()!;
      removed++;
      for (const d of dependents.get(id) ?? []) {
        indegree.set(d, indegree.get(d)! - 1);
        if (indegree.get(d) === 0) queue.push(d);
      }
    }
    expect(removed).toBe(topics.length);
    expect(topics.filter((t) => t.prerequisites.length > 0).length).toBeGreaterThan(topics.length / 2);
  });

  it("ground truth rows hold a latent in [0, 1] for touched topics on snapshot days", () => {
    const t = readCsv(dir, "ground_truth.csv");
    expect(t.header).toEqual([...FILE_COLUMNS["ground_truth.csv"]]);
    const bad = t.rows.filter((r) => {
      const v = Number(r[3]);
      return !(v >= 0 && v <= 1 && r[2]! >= "2026-09-01" && r[2]! <= "2026-09-28");
    });
    expect(t.rows.length).toBeGreaterThan(0);
    expect(bad).toEqual([]);
  });

  it("rejects impossible parameters with an error naming the field", async () => {
    await expect(generateSynthetic({ ...base, start: "2026-02-30", outDir: freshDir() })).rejects.toThrow(
      /start must be a calendar date/,
    );
    await expect(generateSynthetic({ ...base, students: 0, outDir: freshDir() })).rejects.toThrow(
      /students must be an integer >= 1/,
    );
    await expect(generateSynthetic({ ...base, eventsPerDay: -1, outDir: freshDir() })).rejects.toThrow(
      /eventsPerDay/,
    );
  });
});

describe("synthetic generator: realism", () => {
  const day = (ts: string) => ts.slice(0, 10);

  it("quiz correctness correlates with the latent mastery (r > 0.3)", () => {
    const q = readCsv(dir, "quiz_attempts.csv");
    const [s, tp, ts, ok] = ["student_id", "topic_id", "timestamp", "is_correct"].map((n) => col(q, n));
    const latent: number[] = [];
    const correct: number[] = [];
    for (const r of q.rows) {
      latent.push(truth.get(`${r[s!]}|${r[tp!]}|${day(r[ts!]!)}`)!);
      correct.push(r[ok!] === "true" ? 1 : 0);
    }
    expect(latent.every((v) => v !== undefined)).toBe(true);
    expect(pearson(correct, latent)).toBeGreaterThan(0.3);
  });

  it("accuracy on a topic rises over a student's successive attempts", () => {
    const q = readCsv(dir, "quiz_attempts.csv");
    const [s, tp, ok] = ["student_id", "topic_id", "is_correct"].map((n) => col(q, n));
    const nth = new Map<string, number>();
    const sum = [0, 0, 0];
    const n = [0, 0, 0];
    // files are in each student's time order, so the k-th row of a (student, topic) is the k-th attempt
    for (const r of q.rows) {
      const key = `${r[s!]}|${r[tp!]}`;
      const k = (nth.get(key) ?? 0) + 1;
      nth.set(key, k);
      const bucket = k === 1 ? 0 : k <= 4 ? 1 : 2;
      sum[bucket]! += r[ok!] === "true" ? 1 : 0;
      n[bucket]!++;
    }
    const acc = sum.map((x, i) => x / n[i]!);
    expect(acc[1]! - acc[0]!).toBeGreaterThan(0.1);
    expect(acc[2]! - acc[1]!).toBeGreaterThan(0.05);
  });

  it("more hints go with lower correctness, longer answers and weaker knowledge", () => {
    const q = readCsv(dir, "quiz_attempts.csv");
    const [h, ok] = ["hints_used", "is_correct"].map((n) => col(q, n));
    const sum = [0, 0, 0];
    const n = [0, 0, 0];
    for (const r of q.rows) {
      const b = Math.min(2, Number(r[h!]));
      sum[b]! += r[ok!] === "true" ? 1 : 0;
      n[b]!++;
    }
    const acc = sum.map((x, i) => x / n[i]!);
    expect(acc[0]! - acc[1]!).toBeGreaterThan(0.08);
    expect(acc[1]!).toBeGreaterThan(acc[2]!);
  });

  it("video rewinds, practice attempts and chatbot requests grow with weaker knowledge", () => {
    const against = (file: string, value: (t: Table, r: string[]) => number) => {
      const t = readCsv(dir, file);
      const [s, tp, ts] = ["student_id", "topic_id", "timestamp"].map((n) => col(t, n));
      return pearson(
        t.rows.map((r) => value(t, r)),
        t.rows.map((r) => truth.get(`${r[s!]}|${r[tp!]}|${day(r[ts!]!)}`)!),
      );
    };
    expect(against("videos.csv", (t, r) => Number(r[col(t, "rewind_count")]))).toBeLessThan(-0.1);
    expect(against("practice.csv", (t, r) => Number(r[col(t, "attempts")]))).toBeLessThan(-0.15);
    expect(
      against("practice.csv", (t, r) => Number(r[col(t, "correct_count")]) / Number(r[col(t, "attempts")])),
    ).toBeGreaterThan(0.5);
    expect(against("chatbot.csv", (t, r) => Number(r[col(t, "help_requests")]))).toBeLessThan(-0.05);
  });

  it("knowledge decays on days without practice of the topic", () => {
    // (student, topic, day) keys with any event, assignments counting for each listed topic
    const practised = new Set<string>();
    for (const file of [
      "quiz_attempts.csv",
      "videos.csv",
      "practice.csv",
      "chatbot.csv",
      "assignments.csv",
    ]) {
      const t = readCsv(dir, file);
      const isAssignment = file === "assignments.csv";
      const [s, tp, ts] = ["student_id", isAssignment ? "topic_ids" : "topic_id", "timestamp"].map((n) =>
        col(t, n),
      );
      for (const r of t.rows)
        for (const topic of r[tp!]!.split("|")) practised.add(`${r[s!]}|${topic}|${day(r[ts!]!)}`);
    }
    let idlePairs = 0;
    let decreased = 0;
    let increased = 0;
    let totalDrop = 0;
    for (const [key, today] of truth) {
      const [s, topic, d] = key.split("|") as [string, string, string];
      const next = new Date(Date.parse(`${d}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
      const tomorrow = truth.get(`${s}|${topic}|${next}`);
      if (tomorrow === undefined || practised.has(`${s}|${topic}|${next}`)) continue;
      idlePairs++;
      if (tomorrow < today) decreased++;
      if (tomorrow > today) increased++;
      totalDrop += today - tomorrow;
    }
    expect(idlePairs).toBeGreaterThan(1000);
    expect(increased).toBe(0);
    expect(decreased / idlePairs).toBeGreaterThan(0.9);
    expect(totalDrop / idlePairs).toBeGreaterThan(0.002);
  });

  it("students meet the topics of a subject in curriculum order", () => {
    const topics = JSON.parse(readFileSync(join(dir, "topics.json"), "utf8")) as {
      topic_id: string;
      subject_id: string;
    }[];
    const subjectOf = new Map(topics.map((t) => [t.topic_id, t.subject_id]));
    // first time each (student, topic) appears, in event time
    const first = new Map<string, string>();
    for (const file of ["quiz_attempts.csv", "videos.csv", "practice.csv", "chatbot.csv"]) {
      const t = readCsv(dir, file);
      const [s, tp, ts] = ["student_id", "topic_id", "timestamp"].map((n) => col(t, n));
      for (const r of t.rows) {
        const key = `${r[s!]}|${r[tp!]}`;
        const prev = first.get(key);
        if (prev === undefined || r[ts!]! < prev) first.set(key, r[ts!]!);
      }
    }
    const sequences = new Map<string, [string, string][]>(); // student|subject -> (time, topic)
    for (const [key, ts] of first) {
      const [s, topic] = key.split("|") as [string, string];
      const k = `${s}|${subjectOf.get(topic)}`;
      sequences.set(k, [...(sequences.get(k) ?? []), [ts, topic]]);
    }
    let pairs = 0;
    let inOrder = 0;
    for (const seq of sequences.values()) {
      seq.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1));
      for (let i = 1; i < seq.length; i++) {
        pairs++;
        if (seq[i]![1] > seq[i - 1]![1]) inOrder++;
      }
    }
    expect(pairs).toBeGreaterThan(500);
    expect(inOrder / pairs).toBeGreaterThan(0.99);
  });

  it("students differ in activity and in knowledge", () => {
    const q = readCsv(dir, "quiz_attempts.csv");
    const perStudent = new Map<string, number>();
    for (const r of q.rows)
      perStudent.set(r[col(q, "student_id")]!, (perStudent.get(r[col(q, "student_id")]!) ?? 0) + 1);
    const counts = [...perStudent.values()];
    const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
    const sd = Math.sqrt(counts.reduce((a, b) => a + (b - mean) ** 2, 0) / counts.length);
    expect(sd / mean).toBeGreaterThan(0.3);
    // mean final-day latent per student
    const finalLatent = new Map<string, number[]>();
    for (const [key, v] of truth) {
      const [s, , d] = key.split("|") as [string, string, string];
      if (d === "2026-09-28") finalLatent.set(s, [...(finalLatent.get(s) ?? []), v]);
    }
    const means = [...finalLatent.values()].map((v) => v.reduce((a, b) => a + b, 0) / v.length);
    const m = means.reduce((a, b) => a + b, 0) / means.length;
    const spread = Math.sqrt(means.reduce((a, b) => a + (b - m) ** 2, 0) / means.length);
    expect(spread).toBeGreaterThan(0.05);
  });
});

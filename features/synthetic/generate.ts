/**
 * Writes a synthetic learning-event data set (the files of the ingest contract) from the latent
 * process in models/simulation.ts. Students are simulated in fixed blocks; every block depends
 * only on (seed, parameters, student range), so output is byte-identical for a seed whatever the
 * number of worker threads: blocks are written in index order.
 */

import { once } from "node:events";
import { createWriteStream, mkdirSync, type WriteStream, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import {
  buildCohort,
  buildCurriculum,
  type Cohort,
  type Curriculum,
  classOfStudent,
  type SimulationParams,
  StudentSimulator,
} from "../../models/simulation.ts";
import {
  CsvChunkSink,
  classIdOf,
  FILE_COLUMNS,
  FormatTables,
  OUTPUT_FILES,
  type OutputFile,
  type SinkCounts,
  studentIdOf,
} from "./csvSink.ts";

export class SyntheticParamError extends Error {
  readonly code = "SYNTHETIC_PARAM";
  constructor(message: string) {
    super(message);
    this.name = "SyntheticParamError";
  }
}

export interface GenerateOptions {
  students: number;
  topics: number;
  days: number;
  seed: number;
  /** First day of the window, YYYY-MM-DD (UTC). */
  start: string;
  /** Mean events per student per calendar day (population average). */
  eventsPerDay: number;
  /** Ground-truth snapshot every this many days plus the final day; 0 = final day only. */
  truthEvery: number;
  outDir: string;
  /**
   * Worker threads; 0 = generate on the calling thread. Default: one per core for runs of at
   * least WORKERS_FROM_STUDENTS students, else 0. Does not change the output.
   */
  workers?: number;
  /** Called after each block is written. */
  onProgress?: (studentsDone: number, events: number) => void;
}

export interface GenerateManifest {
  generator: string;
  formatVersion: number;
  seed: number;
  parameters: {
    students: number;
    topics: number;
    days: number;
    start: string;
    eventsPerDay: number;
    truthEvery: number;
  };
  window: { start: string; end: string };
  counts: {
    quiz_attempt: number;
    assignment: number;
    video: number;
    practice: number;
    chatbot: number;
    events: number;
    ground_truth_rows: number;
    topics: number;
    chapters: number;
    subjects: number;
    schools: number;
    classes: number;
  };
  files: Record<OutputFile | "topics.json" | "roster.csv", { rows: number; columns: readonly string[] }>;
}

/** Students per block: large enough for few big writes, small enough to bound memory per block. */
export const BLOCK_STUDENTS = 1000;

export interface SyntheticSetup {
  params: SimulationParams;
  curriculum: Curriculum;
  cohort: Cohort;
  tables: FormatTables;
  students: number;
}

export function validateOptions(o: GenerateOptions): number {
  const intAtLeast = (v: number, name: string, min: number) => {
    if (!Number.isInteger(v) || v < min)
      throw new SyntheticParamError(`${name} must be an integer >= ${min} (got ${v})`);
  };
  intAtLeast(o.students, "students", 1);
  intAtLeast(o.topics, "topics", 1);
  intAtLeast(o.days, "days", 1);
  intAtLeast(o.truthEvery, "truthEvery", 0);
  if (!Number.isSafeInteger(o.seed) || o.seed < 0)
    throw new SyntheticParamError(`seed must be a non-negative integer (got ${o.seed})`);
  if (!(o.eventsPerDay > 0 && o.eventsPerDay <= 500))
    throw new SyntheticParamError(`eventsPerDay must be in (0, 500] (got ${o.eventsPerDay})`);
  if (o.days > 3660) throw new SyntheticParamError(`days must be <= 3660 (got ${o.days})`);
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(o.start);
  const startMs = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : Number.NaN;
  if (!m || new Date(startMs).toISOString().slice(0, 10) !== o.start)
    throw new SyntheticParamError(`start must be a calendar date YYYY-MM-DD (got "${o.start}")`);
  return startMs;
}

export function setupSynthetic(o: GenerateOptions): SyntheticSetup {
  const startMs = validateOptions(o);
  // getUTCDay: 0 = Sunday; the simulator counts 0 = Monday.
  const startDayOfWeek = (new Date(startMs).getUTCDay() + 6) % 7;
  const params: SimulationParams = {
    seed: o.seed,
    days: o.days,
    eventsPerDay: o.eventsPerDay,
    startDayOfWeek,
    truthEvery: o.truthEvery,
  };
  const curriculum = buildCurriculum(o.seed, o.topics);
  const cohort = buildCohort(o.seed, o.students);
  const tables = new FormatTables(curriculum, o.students, startMs, o.days);
  return { params, curriculum, cohort, tables, students: o.students };
}

/** Simulates students [from, to) into one CSV chunk per file (the sink is reused across blocks). */
export function generateBlock(
  simulator: StudentSimulator,
  sink: CsvChunkSink,
  from: number,
  to: number,
): BlockResult {
  for (let s = from; s < to; s++) simulator.run(s, sink);
  return sink.take();
}

export function topicsJson(c: Curriculum): string {
  const rows = [];
  for (let t = 0; t < c.nTopics; t++) {
    const prerequisites: string[] = [];
    for (let i = c.prereqStart[t]!; i < c.prereqStart[t + 1]!; i++)
      prerequisites.push(c.topicIds[c.prereqList[i]!]!);
    rows.push({
      topic_id: c.topicIds[t]!,
      name: c.topicNames[t]!,
      chapter_id: c.chapterIds[c.chapterOf[t]!]!,
      subject_id: c.subjectIds[c.subjectOf[t]!]!,
      course_id: c.courseId,
      difficulty_estimate: c.difficultyEstimate[t]!,
      prerequisites,
      content_length: c.contentLength[t]!,
    });
  }
  return `${JSON.stringify(rows, null, 1)}\n`;
}

/**
 * The class lists an LMS would export (`mastery roster load`): one row per student with the class
 * the simulator deals them to. No teacher ids: any teacher whose token lists the class may use it.
 */
export function rosterCsv(students: number): string {
  const rows = ["class_id,student_id"];
  for (let s = 0; s < students; s++) rows.push(`${classIdOf(classOfStudent(s))},${studentIdOf(s, students)}`);
  return `${rows.join("\n")}\n`;
}

export interface BlockResult {
  chunks: Record<OutputFile, Uint8Array>;
  counts: SinkCounts;
}

export async function generateSynthetic(o: GenerateOptions): Promise<GenerateManifest> {
  const setup = setupSynthetic(o);
  const { curriculum, cohort } = setup;
  mkdirSync(o.outDir, { recursive: true });
  writeFileSync(join(o.outDir, "topics.json"), topicsJson(curriculum));
  writeFileSync(join(o.outDir, "roster.csv"), rosterCsv(o.students));

  const streams = new Map<OutputFile, WriteStream>();
  for (const f of OUTPUT_FILES) {
    const s = createWriteStream(join(o.outDir, f), { highWaterMark: 1 << 22 });
    s.write(`${FILE_COLUMNS[f].join(",")}\n`);
    streams.set(f, s);
  }

  const total: SinkCounts = { quiz: 0, video: 0, practice: 0, assignment: 0, chatbot: 0, truth: 0 };
  const nBlocks = Math.ceil(o.students / BLOCK_STUDENTS);
  const consume = async (block: number, r: BlockResult) => {
    for (const f of OUTPUT_FILES) {
      const chunk = r.chunks[f];
      const stream = streams.get(f)!;
      // backpressure: wait for the OS to take the bytes before simulating more
      if (chunk.length > 0 && !stream.write(chunk)) await once(stream, "drain");
    }
    for (const k of Object.keys(total) as (keyof SinkCounts)[]) total[k] += r.counts[k];
    o.onProgress?.(
      Math.min(o.students, (block + 1) * BLOCK_STUDENTS),
      total.quiz + total.video + total.practice + total.assignment + total.chatbot,
    );
  };

  // Starting a worker (tsx loader + compile) costs ~0.5 s, so small runs stay on this thread.
  const wanted = o.workers ?? (o.students >= WORKERS_FROM_STUDENTS ? defaultWorkers() : 0);
  const workers = Math.min(wanted, nBlocks > 1 ? nBlocks : 0);
  if (workers <= 0) {
    const simulator = new StudentSimulator(setup.params, curriculum, cohort);
    const sink = new CsvChunkSink(setup.tables);
    for (let b = 0; b < nBlocks; b++) {
      const from = b * BLOCK_STUDENTS;
      await consume(b, generateBlock(simulator, sink, from, Math.min(o.students, from + BLOCK_STUDENTS)));
    }
  } else {
    await runWithWorkers(o, workers, nBlocks, consume);
  }

  await Promise.all(
    [...streams.values()].map(
      (s) =>
        new Promise<void>((resolve, reject) => {
          s.once("error", reject);
          s.end(resolve);
        }),
    ),
  );

  const events = total.quiz + total.video + total.practice + total.assignment + total.chatbot;
  const lastDay = setup.tables.dayDate[o.days - 1]!;
  const files = {
    "quiz_attempts.csv": { rows: total.quiz, columns: FILE_COLUMNS["quiz_attempts.csv"] },
    "assignments.csv": { rows: total.assignment, columns: FILE_COLUMNS["assignments.csv"] },
    "videos.csv": { rows: total.video, columns: FILE_COLUMNS["videos.csv"] },
    "practice.csv": { rows: total.practice, columns: FILE_COLUMNS["practice.csv"] },
    "chatbot.csv": { rows: total.chatbot, columns: FILE_COLUMNS["chatbot.csv"] },
    "ground_truth.csv": { rows: total.truth, columns: FILE_COLUMNS["ground_truth.csv"] },
    "roster.csv": { rows: o.students, columns: ["class_id", "student_id"] },
    "topics.json": {
      rows: curriculum.nTopics,
      columns: [
        "topic_id",
        "name",
        "chapter_id",
        "subject_id",
        "course_id",
        "difficulty_estimate",
        "prerequisites",
        "content_length",
      ],
    },
  };
  const manifest: GenerateManifest = {
    generator: "mastery generate",
    formatVersion: 1,
    seed: o.seed,
    parameters: {
      students: o.students,
      topics: o.topics,
      days: o.days,
      start: o.start,
      eventsPerDay: o.eventsPerDay,
      truthEvery: o.truthEvery,
    },
    window: { start: `${o.start}T00:00:00Z`, end: `${lastDay}T23:59:59Z` },
    counts: {
      quiz_attempt: total.quiz,
      assignment: total.assignment,
      video: total.video,
      practice: total.practice,
      chatbot: total.chatbot,
      events,
      ground_truth_rows: total.truth,
      topics: curriculum.nTopics,
      chapters: curriculum.chapterIds.length,
      subjects: curriculum.subjectIds.length,
      schools: cohort.nSchools,
      classes: cohort.nClasses,
    },
    files,
  };
  writeFileSync(join(o.outDir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Worker threads used by default for large runs: one per core (up to 4), none on a single core. */
export function defaultWorkers(): number {
  const cores = availableParallelism();
  return cores >= 2 ? Math.min(4, cores) : 0;
}

/** Below this many students the default is to generate on the calling thread. */
export const WORKERS_FROM_STUDENTS = 20 * BLOCK_STUDENTS;

/**
 * Farms blocks out to worker threads (each builds the same setup from the options) and writes
 * results strictly in block order, keeping a bounded number of blocks in flight.
 */
async function runWithWorkers(
  o: GenerateOptions,
  nWorkers: number,
  nBlocks: number,
  consume: (block: number, r: BlockResult) => Promise<void>,
): Promise<void> {
  // From source a bootstrap registers tsx in the thread first; compiled (dist/) runs the JavaScript body directly.
  const entry = import.meta.url.endsWith(".ts")
    ? new URL("./workerEntry.mjs", import.meta.url)
    : new URL("./worker.js", import.meta.url);
  const init = {
    students: o.students,
    topics: o.topics,
    days: o.days,
    seed: o.seed,
    start: o.start,
    eventsPerDay: o.eventsPerDay,
    truthEvery: o.truthEvery,
  };
  const pool = Array.from({ length: nWorkers }, () => new Worker(entry, { workerData: init }));
  const done = new Map<number, BlockResult>();
  let nextToSend = 0;
  let nextToWrite = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const maxInFlight = nWorkers * 3;
  const send = (w: Worker) => {
    if (nextToSend >= nBlocks || failure) return;
    const b = nextToSend++;
    const from = b * BLOCK_STUDENTS;
    w.postMessage({ block: b, from, to: Math.min(o.students, from + BLOCK_STUDENTS) });
  };
  const idle: Worker[] = [];
  for (const w of pool) {
    w.on("message", (m: { block: number } & BlockResult) => {
      done.set(m.block, { chunks: m.chunks, counts: m.counts });
      if (nextToSend - nextToWrite < maxInFlight) send(w);
      else idle.push(w);
      wake?.();
    });
    w.on("error", (e) => {
      failure = e;
      wake?.();
    });
    send(w);
    send(w);
  }
  try {
    while (nextToWrite < nBlocks) {
      const r = done.get(nextToWrite);
      if (failure) throw failure;
      if (!r) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      done.delete(nextToWrite);
      await consume(nextToWrite, r);
      nextToWrite++;
      while (idle.length > 0 && nextToSend < nBlocks && nextToSend - nextToWrite < maxInFlight)
        send(idle.pop()!);
    }
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
}

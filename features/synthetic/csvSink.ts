/**
 * Formats simulated events as CSV rows of the ingest contract, straight into byte chunks (one
 * per file). Ids are precomputed ASCII byte tables and numbers are written digit by digit, so a
 * row allocates nothing.
 */

import type { Curriculum, EventSink } from "../../models/simulation.ts";
import { ascii, ByteChunk } from "./byteChunk.ts";

/** Columns shared by every event file (assignments carry topic_ids among their own fields instead of topic_id). */
export const COMMON_COLUMNS = [
  "event_id",
  "type",
  "student_id",
  "topic_id",
  "timestamp",
  "school_id",
  "class_id",
  "grade",
] as const;

const withoutTopic = COMMON_COLUMNS.filter((c) => c !== "topic_id");

/** File name -> header columns: the contract the ingest side relies on. */
export const FILE_COLUMNS = {
  "quiz_attempts.csv": [
    ...COMMON_COLUMNS,
    "question_id",
    "is_correct",
    "time_spent_sec",
    "attempt_number",
    "hints_used",
  ],
  "assignments.csv": [...withoutTopic, "assignment_id", "topic_ids", "score_pct"],
  "videos.csv": [...COMMON_COLUMNS, "video_id", "watch_pct", "watch_duration_sec", "rewind_count"],
  "practice.csv": [...COMMON_COLUMNS, "attempts", "correct_count"],
  "chatbot.csv": [...COMMON_COLUMNS, "help_requests", "resolved_count"],
  "ground_truth.csv": ["student_id", "topic_id", "day", "latent_mastery"],
} as const;

export type OutputFile = keyof typeof FILE_COLUMNS;
export const OUTPUT_FILES = Object.keys(FILE_COLUMNS) as OutputFile[];

const pad = (n: number, width: number): string => String(n).padStart(width, "0");

/** Id formats shared by the sink and the manifest. */
export function studentIdOf(student: number, nStudents: number): string {
  return `stu-${pad(student, Math.max(6, String(nStudents - 1).length))}`;
}

export function schoolIdOf(school: number): string {
  return `sch${pad(school + 1, 4)}`;
}

export function classIdOf(klass: number): string {
  return `cls${pad(klass + 1, 5)}`;
}

/** Precomputed id bytes for one generation run. */
export class FormatTables {
  readonly topicIds: Uint8Array[];
  readonly questionIds: Uint8Array[] = [];
  readonly videoIds: Uint8Array[] = [];
  readonly chapterIds: Uint8Array[];
  /** "2026-09-01T" per day index. */
  readonly dayPrefix: Uint8Array[] = [];
  /** "2026-09-01" per day index. */
  readonly dayDate: string[] = [];
  readonly dayDateBytes: Uint8Array[] = [];

  constructor(
    curriculum: Curriculum,
    readonly nStudents: number,
    startMs: number,
    days: number,
  ) {
    this.topicIds = curriculum.topicIds.map(ascii);
    this.chapterIds = curriculum.chapterIds.map(ascii);
    for (let t = 0; t < curriculum.nTopics; t++) {
      const id = curriculum.topicIds[t]!;
      const qa = curriculum.questionStart[t]!;
      for (let q = qa; q < curriculum.questionStart[t + 1]!; q++)
        this.questionIds.push(ascii(`${id}-q${pad(q - qa + 1, 2)}`));
      const va = curriculum.videoStart[t]!;
      for (let v = va; v < curriculum.videoStart[t + 1]!; v++)
        this.videoIds.push(ascii(`${id}-v${v - va + 1}`));
    }
    for (let d = 0; d < days; d++) {
      const date = new Date(startMs + d * 86_400_000).toISOString().slice(0, 10);
      this.dayDate.push(date);
      this.dayDateBytes.push(ascii(date));
      this.dayPrefix.push(ascii(`${date}T`));
    }
  }
}

/** Row counts per file. */
export interface SinkCounts {
  quiz: number;
  video: number;
  practice: number;
  assignment: number;
  chatbot: number;
  truth: number;
}

const COMMA = 44;
const NL = 10;
const COLON = 58;
const DASH = 45;
const PIPE = 124;
const Z = 90;
const TYPE_QUIZ = ascii(",quiz_attempt,");
const TYPE_VIDEO = ascii(",video,");
const TYPE_PRACTICE = ascii(",practice,");
const TYPE_CHATBOT = ascii(",chatbot,");
const TYPE_ASSIGNMENT = ascii(",assignment,");
const TRUE = ascii("true");
const FALSE = ascii("false");
const AS_PREFIX = ascii("as-");
/** Generous upper bound on one row's length (the longest, an assignment row, is ~140 bytes). */
const MAX_ROW = 512;

export class CsvChunkSink implements EventSink {
  readonly quizRows = new ByteChunk(1 << 22);
  readonly videoRows = new ByteChunk(1 << 20);
  readonly practiceRows = new ByteChunk(1 << 20);
  readonly assignmentRows = new ByteChunk(1 << 19);
  readonly chatbotRows = new ByteChunk(1 << 19);
  readonly truthRows = new ByteChunk(1 << 20);
  counts: SinkCounts = { quiz: 0, video: 0, practice: 0, assignment: 0, chatbot: 0, truth: 0 };

  private studentId: Uint8Array = new Uint8Array(0);
  /** digits of the student index inside event ids */
  private idStem: Uint8Array = new Uint8Array(0);
  /** ",<school>,<class>,<grade>," */
  private tail: Uint8Array = new Uint8Array(0);
  private classId: Uint8Array = new Uint8Array(0);

  constructor(private readonly f: FormatTables) {}

  /** Hands the accumulated rows (each an own buffer) and their counts over, and starts empty chunks. */
  take(): { chunks: Record<OutputFile, Uint8Array>; counts: SinkCounts } {
    const counts = this.counts;
    this.counts = { quiz: 0, video: 0, practice: 0, assignment: 0, chatbot: 0, truth: 0 };
    const chunks = {
      "quiz_attempts.csv": this.quizRows.take(),
      "assignments.csv": this.assignmentRows.take(),
      "videos.csv": this.videoRows.take(),
      "practice.csv": this.practiceRows.take(),
      "chatbot.csv": this.chatbotRows.take(),
      "ground_truth.csv": this.truthRows.take(),
    };
    return { chunks, counts };
  }

  beginStudent(student: number, school: number, klass: number, grade: number): void {
    const id = studentIdOf(student, this.f.nStudents);
    this.studentId = ascii(id);
    this.idStem = ascii(id.slice(4));
    const classId = classIdOf(klass);
    this.classId = ascii(classId);
    this.tail = ascii(`,${schoolIdOf(school)},${classId},${grade},`);
  }

  /** event_id,type,student_id,[topic_id,]timestamp,school_id,class_id,grade, */
  private common(
    c: ByteChunk,
    letter: number,
    type: Uint8Array,
    seq: number,
    topic: number,
    t: number,
  ): void {
    c.reserve(MAX_ROW);
    c.byte(letter);
    c.byte(DASH);
    c.bytes(this.idStem);
    c.byte(DASH);
    c.uintPadded(seq, 6);
    c.bytes(type);
    c.bytes(this.studentId);
    c.byte(COMMA);
    if (topic >= 0) {
      c.bytes(this.f.topicIds[topic]!);
      c.byte(COMMA);
    }
    const day = (t / 86400) | 0;
    const r = t - day * 86400;
    const h = (r / 3600) | 0;
    const m = ((r - h * 3600) / 60) | 0;
    c.bytes(this.f.dayPrefix[day]!);
    c.uintPadded(h, 2);
    c.byte(COLON);
    c.uintPadded(m, 2);
    c.byte(COLON);
    c.uintPadded(r - h * 3600 - m * 60, 2);
    c.byte(Z);
    c.bytes(this.tail);
  }

  quiz(
    seq: number,
    topic: number,
    t: number,
    question: number,
    correct: boolean,
    timeSpentSec: number,
    attempt: number,
    hints: number,
  ): void {
    this.counts.quiz++;
    const c = this.quizRows;
    this.common(c, 113 /* q */, TYPE_QUIZ, seq, topic, t);
    c.bytes(this.f.questionIds[question]!);
    c.byte(COMMA);
    c.bytes(correct ? TRUE : FALSE);
    c.byte(COMMA);
    c.uint(timeSpentSec);
    c.byte(COMMA);
    c.uint(attempt);
    c.byte(COMMA);
    c.uint(hints);
    c.byte(NL);
  }

  video(
    seq: number,
    topic: number,
    t: number,
    video: number,
    watchPct: number,
    durationSec: number,
    rewinds: number,
  ): void {
    this.counts.video++;
    const c = this.videoRows;
    this.common(c, 118 /* v */, TYPE_VIDEO, seq, topic, t);
    c.bytes(this.f.videoIds[video]!);
    c.byte(COMMA);
    c.fixed(watchPct, 1);
    c.byte(COMMA);
    c.uint(durationSec);
    c.byte(COMMA);
    c.uint(rewinds);
    c.byte(NL);
  }

  practice(seq: number, topic: number, t: number, attempts: number, correct: number): void {
    this.counts.practice++;
    const c = this.practiceRows;
    this.common(c, 112 /* p */, TYPE_PRACTICE, seq, topic, t);
    c.uint(attempts);
    c.byte(COMMA);
    c.uint(correct);
    c.byte(NL);
  }

  chatbot(seq: number, topic: number, t: number, helpRequests: number, resolved: number): void {
    this.counts.chatbot++;
    const c = this.chatbotRows;
    this.common(c, 99 /* c */, TYPE_CHATBOT, seq, topic, t);
    c.uint(helpRequests);
    c.byte(COMMA);
    c.uint(resolved);
    c.byte(NL);
  }

  assignment(
    seq: number,
    t: number,
    chapter: number,
    number: number,
    topicA: number,
    topicB: number,
    topicC: number,
    scorePct: number,
  ): void {
    this.counts.assignment++;
    const c = this.assignmentRows;
    this.common(c, 97 /* a */, TYPE_ASSIGNMENT, seq, -1, t);
    const ids = this.f.topicIds;
    c.bytes(AS_PREFIX);
    c.bytes(this.classId);
    c.byte(DASH);
    c.bytes(this.f.chapterIds[chapter]!);
    c.byte(DASH);
    c.uint(number);
    c.byte(COMMA);
    c.bytes(ids[topicA]!);
    if (topicB >= 0) {
      c.byte(PIPE);
      c.bytes(ids[topicB]!);
    }
    if (topicC >= 0) {
      c.byte(PIPE);
      c.bytes(ids[topicC]!);
    }
    c.byte(COMMA);
    c.fixed(scorePct, 1);
    c.byte(NL);
  }

  truth(topic: number, day: number, latent: number): void {
    this.counts.truth++;
    const c = this.truthRows;
    c.reserve(MAX_ROW);
    c.bytes(this.studentId);
    c.byte(COMMA);
    c.bytes(this.f.topicIds[topic]!);
    c.byte(COMMA);
    c.bytes(this.f.dayDateBytes[day]!);
    c.byte(COMMA);
    c.fixed(latent, 4);
    c.byte(NL);
  }
}

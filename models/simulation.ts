/**
 * Latent learning process behind the synthetic event generator (`mastery generate`).
 *
 * Pure: everything is derived from the seed and the parameters; events leave through an
 * EventSink that receives primitives only (no per-event objects), so the same code serves the
 * CSV writer, tests and benchmarks.
 *
 * The model, per (student, topic), is a continuous latent knowledge K in [0, 1]:
 *  - learning: each learning event moves K toward 1, K' = K + r (1 - K) (the linear-operator
 *    learning model of Bush & Mosteller 1951), with r = base rate of the event kind x student
 *    learning rate x class teaching effect x topic ease x prerequisite readiness;
 *  - forgetting: between events K decays toward a durable floor with a half-life,
 *    K(t) = F + (P - F) 2^(-dt / h) (Ebbinghaus-style exponential forgetting); each event
 *    consolidates part of the gain into F, and spaced practice lengthens h (spacing effect);
 *  - answers: an item with threshold tau is known with probability sigma(12 (K - tau)), and a
 *    known item is answered correctly unless the student slips; an unknown one by a guess
 *    (BKT-style guess/slip, Corbett & Anderson 1995);
 *  - hints, rewinds, time spent, practice attempts and chatbot requests grow with 1 - K.
 */

import { sigmoid } from "./logistic.ts";
import { Xoshiro128 } from "./prng.ts";

/** Stream ids that keep the per-domain random streams independent of each other. */
const STREAM_TOPICS = 0x10000000;
const STREAM_CLASSES = 0x20000000;
const STREAM_SCHOOLS = 0x30000000;
const STREAM_STUDENTS = 0x40000000;

const SEC_PER_DAY = 86400;
/** Slope of the item characteristic curve on the K scale. */
export const ITEM_SLOPE = 12;
const CLASS_SIZE = 25;
const CLASSES_PER_SCHOOL = 12;
const TOPICS_PER_CHAPTER = 8;
const TOPICS_PER_SUBJECT = 40;
const SUBJECT_NAMES = [
  "Mathematics",
  "Physics",
  "Chemistry",
  "Biology",
  "English",
  "History",
  "Geography",
  "Computer Science",
  "Economics",
  "Art",
  "Music",
  "Languages",
];
const CONCEPTS = [
  "Foundations",
  "Definitions",
  "Notation",
  "Core rules",
  "Worked examples",
  "Applications",
  "Models",
  "Proofs",
  "Problem solving",
  "Estimation",
  "Review",
  "Extensions",
];

export const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

/** Knowledge after a learning step with rate r (linear-operator model). */
export function learnStep(k: number, rate: number): number {
  return k + clamp(rate, 0, 1) * (1 - k);
}

/** Knowledge after `elapsedDays` without practice: exponential decay toward the durable floor. */
export function retained(peak: number, floor: number, elapsedDays: number, halfLifeDays: number): number {
  // 2^(-x) written as exp(-x ln 2): Math.exp is several times faster than ** in V8.
  return floor + (peak - floor) * Math.exp((-elapsedDays / halfLifeDays) * Math.LN2);
}

/** Probability that a student with knowledge k knows an item with threshold tau. */
export function pKnowItem(k: number, tau: number): number {
  return sigmoid(ITEM_SLOPE * (k - tau));
}

/** P(correct) = P(know)(1 - slip) + (1 - P(know)) guess. */
export function pCorrect(pKnow: number, guess: number, slip: number): number {
  return pKnow * (1 - slip) + (1 - pKnow) * guess;
}

/** Course -> subject -> chapter -> topic hierarchy with prerequisites (CSR lists), items and videos. */
export interface Curriculum {
  readonly nTopics: number;
  readonly courseId: string;
  readonly topicIds: readonly string[];
  readonly topicNames: readonly string[];
  readonly chapterIds: readonly string[];
  readonly subjectIds: readonly string[];
  readonly chapterOf: Int32Array;
  readonly subjectOf: Int32Array;
  /** Topics of subject s are the contiguous range [subjectStart[s], subjectStart[s + 1]). */
  readonly subjectStart: Int32Array;
  /** True difficulty in [0, 1] (drives learning and item thresholds). */
  readonly difficulty: Float64Array;
  /** What a curriculum author would publish: the true difficulty plus noise, 2 decimals. */
  readonly difficultyEstimate: Float64Array;
  /** Minutes of instructional content. */
  readonly contentLength: Int32Array;
  /** Prerequisites of topic t are prereqList[prereqStart[t] .. prereqStart[t + 1]); always earlier topics. */
  readonly prereqStart: Int32Array;
  readonly prereqList: Int32Array;
  /** Questions of topic t are the global indices [questionStart[t], questionStart[t + 1]). */
  readonly questionStart: Int32Array;
  readonly questionThreshold: Float64Array;
  readonly questionGuess: Float64Array;
  /** Videos of topic t are [videoStart[t], videoStart[t + 1]). */
  readonly videoStart: Int32Array;
  readonly videoLengthSec: Float64Array;
}

const pad = (n: number, width: number): string => String(n).padStart(width, "0");

export function buildCurriculum(seed: number, nTopics: number): Curriculum {
  if (!Number.isInteger(nTopics) || nTopics < 1)
    throw new RangeError(`nTopics must be >= 1 (got ${nTopics})`);
  const rng = new Xoshiro128(seed, STREAM_TOPICS);
  const nSubjects = clamp(Math.round(nTopics / TOPICS_PER_SUBJECT), 1, Math.min(nTopics, 99));
  const subjectStart = new Int32Array(nSubjects + 1);
  for (let s = 0; s <= nSubjects; s++) subjectStart[s] = Math.round((s * nTopics) / nSubjects);

  const topicIds: string[] = [];
  const topicNames: string[] = [];
  const chapterIds: string[] = [];
  const subjectIds: string[] = [];
  const chapterOf = new Int32Array(nTopics);
  const subjectOf = new Int32Array(nTopics);
  const difficulty = new Float64Array(nTopics);
  const difficultyEstimate = new Float64Array(nTopics);
  const contentLength = new Int32Array(nTopics);
  const prereqStart = new Int32Array(nTopics + 1);
  const prereqs: number[] = [];
  const questionStart = new Int32Array(nTopics + 1);
  const videoStart = new Int32Array(nTopics + 1);
  const thresholds: number[] = [];
  const guesses: number[] = [];
  const videoLengths: number[] = [];

  for (let s = 0; s < nSubjects; s++) {
    subjectIds.push(`sub${pad(s + 1, 2)}`);
    const first = subjectStart[s]!;
    const end = subjectStart[s + 1]!;
    const len = end - first;
    const nChapters = Math.max(1, Math.round(len / TOPICS_PER_CHAPTER));
    const subjectName = SUBJECT_NAMES[s % SUBJECT_NAMES.length]!;
    let prevChapterFirst = -1;
    for (let c = 0; c < nChapters; c++) {
      const chapter = chapterIds.length;
      chapterIds.push(`ch${pad(chapter + 1, 3)}`);
      const cFirst = first + Math.round((c * len) / nChapters);
      const cEnd = first + Math.round(((c + 1) * len) / nChapters);
      for (let t = cFirst; t < cEnd; t++) {
        const j = t - cFirst;
        topicIds.push(`t${pad(t + 1, 4)}`);
        topicNames.push(`${subjectName} ${c + 1}.${j + 1}: ${CONCEPTS[(t * 7 + c) % CONCEPTS.length]!}`);
        chapterOf[t] = chapter;
        subjectOf[t] = s;
        // Later topics of a subject are harder on average.
        const d = clamp(0.25 + (0.45 * (t - first)) / Math.max(1, len - 1) + 0.12 * rng.normal(), 0.05, 0.95);
        difficulty[t] = d;
        difficultyEstimate[t] = Math.round(clamp(d + 0.07 * rng.normal(), 0, 1) * 100) / 100;
        contentLength[t] = Math.round(clamp(8 + 30 * d + 6 * rng.normal(), 4, 60));

        // Prerequisites: always earlier topics of the same chapter/subject, so the graph is a DAG.
        prereqStart[t] = prereqs.length;
        if (j > 0) {
          if (rng.next() < 0.85) prereqs.push(t - 1);
          if (j > 1 && rng.next() < 0.35) {
            const other = cFirst + rng.int(j - 1);
            if (other !== t - 1) prereqs.push(other);
          }
        } else if (prevChapterFirst >= 0 && rng.next() < 0.7) {
          // first topic of a chapter builds on some topic of the previous chapter
          prereqs.push(prevChapterFirst + rng.int(t - prevChapterFirst));
        }

        questionStart[t] = thresholds.length;
        const nQ = 8 + rng.int(13);
        for (let q = 0; q < nQ; q++) {
          thresholds.push(clamp(0.3 + 0.35 * d + 0.08 * rng.normal(), 0.08, 0.92));
          // multiple choice (4-5 options) vs short answer
          guesses.push(rng.next() < 0.7 ? 0.2 + 0.05 * rng.int(2) : 0.05);
        }
        videoStart[t] = videoLengths.length;
        const nV = 1 + rng.int(3);
        for (let v = 0; v < nV; v++) {
          videoLengths.push(Math.round(((contentLength[t]! * 60) / nV) * (0.7 + 0.6 * rng.next())));
        }
      }
      prevChapterFirst = cFirst;
    }
  }
  prereqStart[nTopics] = prereqs.length;
  questionStart[nTopics] = thresholds.length;
  videoStart[nTopics] = videoLengths.length;
  return {
    nTopics,
    courseId: "c1",
    topicIds,
    topicNames,
    chapterIds,
    subjectIds,
    chapterOf,
    subjectOf,
    subjectStart,
    difficulty,
    difficultyEstimate,
    contentLength,
    prereqStart,
    prereqList: Int32Array.from(prereqs),
    questionStart,
    questionThreshold: Float64Array.from(thresholds),
    questionGuess: Float64Array.from(guesses),
    videoStart,
    videoLengthSec: Float64Array.from(videoLengths),
  };
}

/** Schools and classes: students are dealt to classes of 25 in index order, 12 classes per school. */
export interface Cohort {
  readonly nStudents: number;
  readonly nClasses: number;
  readonly nSchools: number;
  readonly classSchool: Int32Array;
  readonly classGrade: Int32Array;
  /** Multiplier on learning rates (teaching quality), mean about 1. */
  readonly classTeaching: Float64Array;
  /** Events on the current topic before the class moves on (pacing). */
  readonly classPace: Int32Array;
  /** Shift of the mean ability of the school's students. */
  readonly schoolAbility: Float64Array;
}

export function buildCohort(seed: number, nStudents: number): Cohort {
  const nClasses = Math.max(1, Math.ceil(nStudents / CLASS_SIZE));
  const nSchools = Math.ceil(nClasses / CLASSES_PER_SCHOOL);
  const schoolAbility = new Float64Array(nSchools);
  for (let s = 0; s < nSchools; s++)
    schoolAbility[s] = 0.35 * new Xoshiro128(seed, STREAM_SCHOOLS + s).normal();
  const classSchool = new Int32Array(nClasses);
  const classGrade = new Int32Array(nClasses);
  const classTeaching = new Float64Array(nClasses);
  const classPace = new Int32Array(nClasses);
  for (let c = 0; c < nClasses; c++) {
    const rng = new Xoshiro128(seed, STREAM_CLASSES + c);
    classSchool[c] = Math.floor(c / CLASSES_PER_SCHOOL);
    classGrade[c] = 6 + rng.int(7);
    classTeaching[c] = Math.exp(0.15 * rng.normal());
    classPace[c] = 8 + rng.int(8);
  }
  return { nStudents, nClasses, nSchools, classSchool, classGrade, classTeaching, classPace, schoolAbility };
}

export function classOfStudent(student: number): number {
  return Math.floor(student / CLASS_SIZE);
}

/** Receives the simulated events. Arguments are primitives so the hot loop allocates nothing. */
export interface EventSink {
  beginStudent(student: number, school: number, klass: number, grade: number): void;
  /** `t` is seconds since the start of the window; `seq` numbers the student's events from 0. */
  quiz(
    seq: number,
    topic: number,
    t: number,
    question: number,
    correct: boolean,
    timeSpentSec: number,
    attempt: number,
    hints: number,
  ): void;
  video(
    seq: number,
    topic: number,
    t: number,
    video: number,
    watchPct: number,
    durationSec: number,
    rewinds: number,
  ): void;
  practice(seq: number, topic: number, t: number, attempts: number, correct: number): void;
  chatbot(seq: number, topic: number, t: number, helpRequests: number, resolved: number): void;
  /** topicB/topicC are -1 when the assignment covers fewer topics; `number` counts the student's assignments in the chapter. */
  assignment(
    seq: number,
    t: number,
    chapter: number,
    number: number,
    topicA: number,
    topicB: number,
    topicC: number,
    scorePct: number,
  ): void;
  /** Latent knowledge at the end of `day` (0-based) for a topic the student has practised. */
  truth(topic: number, day: number, latent: number): void;
}

export interface SimulationParams {
  seed: number;
  days: number;
  /** Mean events per student per calendar day, averaged over the population. */
  eventsPerDay: number;
  /** Day of week of day 0: 0 = Monday ... 6 = Sunday. */
  startDayOfWeek: number;
  /** Ground-truth snapshot every this many days (plus the final day); 0 = final day only. */
  truthEvery: number;
}

/** Event kinds, also the index into the type-mix weights. */
export const EVENT_KINDS = ["quiz_attempt", "video", "practice", "assignment", "chatbot"] as const;
const QUIZ = 0;
const VIDEO = 1;
const PRACTICE = 2;
const ASSIGNMENT = 3;
const CHATBOT = 4;
/**
 * Type-mix weights before state-dependent modulation; calibrated so that the generated mix comes
 * out near 60% quiz, 15% video, 12% practice, 5% assignment, 8% chatbot.
 */
const BASE_MIX = [0.6, 0.172, 0.12, 0.043, 0.075];
const WEEKEND_ACTIVITY = 0.45;
const EVENTS_PER_SESSION = 8;

/** Mean of sigmoid(a + b Z), Z ~ N(0, 1), by quadrature on a fine grid (pure, deterministic). */
function meanLogitNormal(a: number, b: number): number {
  let num = 0;
  let den = 0;
  for (let i = -600; i <= 600; i++) {
    const z = i / 100;
    const w = Math.exp(-0.5 * z * z);
    num += w * sigmoid(a + b * z);
    den += w;
  }
  return num / den;
}

const ACTIVITY_A = 1.0;
const ACTIVITY_B = 0.9;

/**
 * Simulates one student at a time over the whole window; reuses its typed arrays between
 * students, so a simulator instance is cheap to run over millions of students.
 */
export class StudentSimulator {
  private readonly peak: Float64Array;
  private readonly floor: Float64Array;
  private readonly lastT: Float64Array;
  private readonly halfLife: Float64Array;
  private readonly exposures: Int32Array;
  private readonly ready: Uint8Array;
  private readonly touched: Int32Array;
  private nTouched = 0;
  private readonly pointer: Int32Array;
  private readonly chapterAssignments: Int32Array;
  private readonly meanActivity: number;
  private readonly weights = new Float64Array(5);

  // current student's traits
  private rng: Xoshiro128 = new Xoshiro128(0);
  private ability = 0;
  private grade = 6;
  private learnRate = 1;
  private slip = 0.08;
  private hintPropensity = 1;
  private videoHabit = 0.5;
  private chatPropensity = 1;
  private speed = 1;
  private halfLifeBase = 4;
  private advanceAt = 0.75;
  private pace = 12;

  constructor(
    private readonly params: SimulationParams,
    private readonly curriculum: Curriculum,
    private readonly cohort: Cohort,
  ) {
    const T = curriculum.nTopics;
    this.peak = new Float64Array(T);
    this.floor = new Float64Array(T);
    this.lastT = new Float64Array(T);
    this.halfLife = new Float64Array(T);
    this.exposures = new Int32Array(T);
    this.ready = new Uint8Array(T);
    this.touched = new Int32Array(T);
    this.pointer = new Int32Array(curriculum.subjectIds.length);
    this.chapterAssignments = new Int32Array(curriculum.chapterIds.length);
    const weekFactor = (5 + 2 * WEEKEND_ACTIVITY) / 7;
    this.meanActivity = meanLogitNormal(ACTIVITY_A, ACTIVITY_B) * weekFactor;
  }

  /** Latent knowledge of `topic` at time t (seconds), initializing the student's prior on first use. */
  knowledge(topic: number, t: number): number {
    if (this.ready[topic] === 0) this.initTopic(topic);
    const elapsedDays = (t - this.lastT[topic]!) / SEC_PER_DAY;
    if (elapsedDays <= 0) return this.peak[topic]!;
    return retained(this.peak[topic]!, this.floor[topic]!, elapsedDays, this.halfLife[topic]!);
  }

  private initTopic(topic: number): void {
    const d = this.curriculum.difficulty[topic]!;
    // Prior knowledge: abler and older students know more before instruction; harder topics less.
    const k0 = clamp(
      0.12 + 0.07 * this.ability + 0.015 * (this.grade - 6) - 0.15 * (d - 0.5) + 0.04 * this.rng.normal(),
      0.01,
      0.6,
    );
    this.peak[topic] = k0;
    this.floor[topic] = k0;
    this.lastT[topic] = 0;
    this.halfLife[topic] = this.halfLifeBase * (1.2 - 0.4 * d);
    this.exposures[topic] = 0;
    this.ready[topic] = 1;
  }

  /** Mean prerequisite knowledge mapped to a learning-rate factor in [0.3, 1.2]. */
  private readiness(topic: number, t: number): number {
    const c = this.curriculum;
    const a = c.prereqStart[topic]!;
    const b = c.prereqStart[topic + 1]!;
    if (a === b) return 1;
    let s = 0;
    for (let i = a; i < b; i++) s += this.knowledge(c.prereqList[i]!, t);
    return clamp(0.3 + 0.95 * (s / (b - a)), 0.3, 1.2);
  }

  /** Applies one learning event of strength `baseRate` at time t. */
  private learn(topic: number, t: number, baseRate: number, classTeaching: number): void {
    const k = this.knowledge(topic, t);
    const gapDays = (t - this.lastT[topic]!) / SEC_PER_DAY;
    const ease = 1.3 - this.curriculum.difficulty[topic]!;
    const rate = baseRate * this.learnRate * classTeaching * ease * this.readiness(topic, t);
    const next = learnStep(k, rate);
    if (this.exposures[topic] === 0) this.touched[this.nTouched++] = topic;
    else {
      // Spacing effect: a gap that is long relative to the half-life stabilizes memory more.
      const h = this.halfLife[topic]!;
      this.halfLife[topic] = Math.min(120, h * (1 + 0.5 * Math.min(1, gapDays / h)) + 0.05);
    }
    this.peak[topic] = next;
    const floor = this.floor[topic]!;
    this.floor[topic] = floor + 0.12 * (next - floor);
    this.lastT[topic] = t;
    this.exposures[topic] = this.exposures[topic]! + 1;
  }

  run(student: number, sink: EventSink): void {
    const { params, curriculum: cur, cohort } = this;
    const klass = classOfStudent(student);
    const school = cohort.classSchool[klass]!;
    const rng = new Xoshiro128(params.seed, STREAM_STUDENTS + student);
    this.rng = rng;
    this.grade = cohort.classGrade[klass]!;
    const teaching = cohort.classTeaching[klass]!;
    this.pace = cohort.classPace[klass]!;
    sink.beginStudent(student, school, klass, this.grade);

    // Traits: ability drives prior knowledge, learning rate, slips and forgetting; engagement
    // traits are partly correlated with ability.
    const ability = cohort.schoolAbility[school]! + rng.normal();
    this.ability = ability;
    this.learnRate = Math.exp(0.3 * ability + 0.2 * rng.normal());
    this.slip = clamp(0.08 - 0.025 * ability + 0.02 * rng.normal(), 0.02, 0.2);
    this.hintPropensity = Math.exp(0.6 * rng.normal() - 0.18);
    this.videoHabit = sigmoid(0.3 * ability + rng.normal());
    this.chatPropensity = Math.exp(0.5 * rng.normal() - 0.125);
    this.speed = Math.exp(0.25 * rng.normal());
    this.halfLifeBase = 4 * Math.exp(0.3 * rng.normal() + 0.15 * ability);
    this.advanceAt = clamp(0.75 + 0.05 * rng.normal(), 0.6, 0.9);
    const activity = sigmoid(ACTIVITY_A + ACTIVITY_B * rng.normal());
    const engagement = Math.exp(0.5 * (0.3 * ability + 0.95 * rng.normal()) - 0.125);
    const meanIfActive = (params.eventsPerDay * engagement) / this.meanActivity;

    // reset per-student state
    for (let i = 0; i < this.nTouched; i++) this.exposures[this.touched[i]!] = 0;
    this.ready.fill(0);
    this.nTouched = 0;
    const nSubjects = cur.subjectIds.length;
    for (let s = 0; s < nSubjects; s++) this.pointer[s] = cur.subjectStart[s]!;
    this.chapterAssignments.fill(0);

    let seq = 0;
    let retryQuestion = -1;
    let retryAttempt = 0;
    const w = this.weights;
    for (let day = 0; day < params.days; day++) {
      const dow = (params.startDayOfWeek + day) % 7;
      const weekend = dow >= 5;
      const dayStart = day * SEC_PER_DAY;
      const dayEnd = dayStart + SEC_PER_DAY - 1;
      if (rng.next() < activity * (weekend ? WEEKEND_ACTIVITY : 1)) {
        let remaining = rng.poisson(meanIfActive);
        // first session: at school (weekdays) or in the afternoon/evening
        let t =
          dayStart +
          (weekend
            ? 9 * 3600 + rng.int(11 * 3600)
            : rng.next() < 0.35
              ? 8.5 * 3600 + rng.int(6 * 3600)
              : 15.5 * 3600 + rng.int(6 * 3600));
        while (remaining > 0 && t < dayEnd) {
          const inSession = Math.min(remaining, EVENTS_PER_SESSION);
          remaining -= inSession;
          // pick a subject and its current topic, or review an earlier one (spaced repetition)
          const s = rng.int(nSubjects);
          const sFirst = cur.subjectStart[s]!;
          let topic = this.pointer[s]!;
          const review = topic > sFirst && rng.next() < 0.15;
          if (review) topic = sFirst + rng.int(topic - sFirst);
          retryQuestion = -1;
          for (let e = 0; e < inSession && t < dayEnd; e++) {
            const k = this.knowledge(topic, t);
            const exp = this.exposures[topic]!;
            const struggle = 1 - k;
            w[QUIZ] = BASE_MIX[QUIZ]!;
            w[VIDEO] = BASE_MIX[VIDEO]! * (exp === 0 ? 2.5 : exp < 3 ? 1.1 : 0.6) * (0.5 + this.videoHabit);
            w[PRACTICE] = BASE_MIX[PRACTICE]! * (review ? 2.5 : 0.9);
            w[ASSIGNMENT] = BASE_MIX[ASSIGNMENT]! * (exp >= 4 ? 1.8 : 0.35);
            w[CHATBOT] = BASE_MIX[CHATBOT]! * (0.2 + 1.6 * struggle) * this.chatPropensity;
            const kind = pickWeighted(w, rng.next());
            const ts = Math.min(t, dayEnd);
            let duration: number;
            if (kind === QUIZ) {
              let q: number;
              let attempt: number;
              if (retryQuestion >= 0) {
                q = retryQuestion;
                attempt = retryAttempt + 1;
              } else {
                const qa = cur.questionStart[topic]!;
                q = qa + rng.int(cur.questionStart[topic + 1]! - qa);
                attempt = 1;
              }
              const pk = pKnowItem(k, cur.questionThreshold[q]!);
              const hints = Math.min(4, rng.poisson(this.hintPropensity * (1 - pk) * 1.2));
              // a retry after a wrong answer has one option fewer; hints raise a guesser's odds
              const guess = Math.min(0.9, cur.questionGuess[q]! * (1 + 0.4 * (attempt - 1)) + 0.04 * hints);
              const correct = rng.next() < pCorrect(pk, guess, this.slip);
              const spent = Math.max(
                2,
                Math.round(
                  (15 + 50 * cur.questionThreshold[q]!) *
                    this.speed *
                    (1.7 - 0.9 * pk) *
                    (1 + 0.3 * hints) *
                    Math.exp(0.35 * rng.normal()),
                ),
              );
              sink.quiz(seq++, topic, ts, q, correct, spent, attempt, hints);
              if (!correct && attempt < 3 && rng.next() < 0.45) {
                retryQuestion = q;
                retryAttempt = attempt;
              } else retryQuestion = -1;
              this.learn(topic, ts, (correct ? 0.07 : 0.1) + 0.02 * hints, teaching);
              duration = spent + 10 + rng.int(40);
            } else if (kind === VIDEO) {
              const va = cur.videoStart[topic]!;
              const v = va + rng.int(cur.videoStart[topic + 1]! - va);
              const watch = clamp(0.3 + 0.6 * this.videoHabit + 0.15 * rng.normal(), 0.05, 1);
              const rewinds = rng.poisson((0.3 + 2.5 * struggle) * (0.5 + this.videoHabit));
              const watchPct = Math.round(watch * 1000) / 10;
              const watched = Math.round(cur.videoLengthSec[v]! * watch * (1 + 0.1 * rewinds));
              sink.video(seq++, topic, ts, v, watchPct, watched, rewinds);
              this.learn(topic, ts, 0.14 * watch, teaching);
              duration = watched + 20 + rng.int(60);
              retryQuestion = -1;
            } else if (kind === PRACTICE) {
              const attempts = 3 + rng.poisson(2 + 6 * struggle);
              const typical = pCorrect(pKnowItem(k, 0.3 + 0.35 * cur.difficulty[topic]!), 0.2, this.slip);
              const correct = rng.binomial(attempts, typical);
              sink.practice(seq++, topic, ts, attempts, correct);
              this.learn(topic, ts, 0.025 * attempts, teaching);
              duration = attempts * (30 + rng.int(40));
            } else if (kind === CHATBOT) {
              const help = 1 + rng.poisson(2.2 * struggle * this.hintPropensity);
              const resolved = rng.binomial(help, 0.35 + 0.55 * k);
              sink.chatbot(seq++, topic, ts, help, resolved);
              this.learn(topic, ts, 0.05 * resolved, teaching);
              duration = help * (40 + rng.int(80));
            } else {
              // assignment on the current topic and up to two earlier ones of its chapter
              const chapter = cur.chapterOf[topic]!;
              const b = topic > 0 && cur.chapterOf[topic - 1] === chapter ? topic - 1 : -1;
              const c = b > 0 && cur.chapterOf[b - 1] === chapter && rng.next() < 0.5 ? b - 1 : -1;
              let sum = this.typicalCorrect(topic, ts);
              let n = 1;
              if (b >= 0) {
                sum += this.typicalCorrect(b, ts);
                n++;
              }
              if (c >= 0) {
                sum += this.typicalCorrect(c, ts);
                n++;
              }
              const score = Math.round(clamp(100 * (sum / n + 0.06 * rng.normal()), 0, 100) * 10) / 10;
              const number = ++this.chapterAssignments[chapter]!;
              sink.assignment(seq++, ts, chapter, number, topic, b, c, score);
              this.learn(topic, ts, 0.08, teaching);
              duration = 900 + rng.int(1800);
              retryQuestion = -1;
            }
            t += duration;
            // the class moves on once the student has it, or when the class pace says so
            if (
              !review &&
              (this.knowledge(topic, t) >= this.advanceAt || this.exposures[topic]! >= this.pace)
            ) {
              const next = topic + 1;
              if (next < cur.subjectStart[s + 1]!) {
                this.pointer[s] = next;
                topic = next;
                retryQuestion = -1;
              }
            }
          }
          t += 1800 + rng.int(3 * 3600);
        }
      }
      if (day === params.days - 1 || (params.truthEvery > 0 && (day + 1) % params.truthEvery === 0)) {
        for (let i = 0; i < this.nTouched; i++) {
          const topic = this.touched[i]!;
          sink.truth(topic, day, this.knowledge(topic, dayEnd));
        }
      }
    }
  }

  /** Expected score on a typical item of the topic (used by assignments). */
  private typicalCorrect(topic: number, t: number): number {
    const k = this.knowledge(topic, t);
    return pCorrect(pKnowItem(k, 0.3 + 0.35 * this.curriculum.difficulty[topic]!), 0.2, this.slip);
  }
}

function pickWeighted(w: Float64Array, u: number): number {
  let total = 0;
  for (let i = 0; i < w.length; i++) total += w[i]!;
  let x = u * total;
  for (let i = 0; i < w.length - 1; i++) {
    x -= w[i]!;
    if (x < 0) return i;
  }
  return w.length - 1;
}

/**
 * What differs between the validity bench's generator settings (docs/benchmarks.md Validity, round 18): the
 * latent truth of every touched (student, topic) pair on the bench's truth day, without the pipeline. Per
 * setting: the truth's mean and sd, the share of its variance between students and between topics (and the
 * sd of the student and topic means), how far the pairs sit above their topic's typical item threshold (the
 * generator's 0.3 + 0.35 difficulty; far above it the answers saturate at 1 - slip and say little), quiz
 * answers per pair before the cut, and the generator's drawn curriculum and cohort. Bench only: it reads the
 * truth, so nothing here may feed the product.
 *
 *   npx tsx bench/validitySettings.ts
 *   SETTINGS=4:40:600:3.4,1:40:2000:3.4 npx tsx bench/validitySettings.ts   # seed:topics:students:eventsPerDay
 */
import { buildCohort, buildCurriculum, type EventSink, StudentSimulator } from "../models/simulation.ts";

const DAY_S = 86_400;
/** The bench's cut: the end of day 56 (63 days generated, truth every 7 days: day index 55 is the cut's). */
const CUT_DAY = 56;
const TRUTH_DAY = CUT_DAY - 1;

interface Setting {
  seed: number;
  topics: number;
  students: number;
  eventsPerDay: number;
}

// The six settings of the status table: seeds 1-5 at 600 students (seed 2 is the bench's second, sparser
// setting: SEEDS=1,2 ONLY=2) and seed 1 at 2,000.
const DEFAULT_SETTINGS = "1:40:600:3.4,2:60:600:2.2,3:40:600:3.4,4:40:600:3.4,5:40:600:3.4,1:40:2000:3.4";

function parseSettings(text: string): Setting[] {
  return text.split(",").map((part) => {
    const [seed, topics, students, eventsPerDay] = part.split(":").map(Number);
    if (
      !Number.isInteger(seed) ||
      !Number.isInteger(topics) ||
      !Number.isInteger(students) ||
      !(eventsPerDay !== undefined && eventsPerDay > 0)
    )
      throw new Error(`SETTINGS: each entry is seed:topics:students:eventsPerDay (got ${part})`);
    return { seed: seed!, topics: topics!, students: students!, eventsPerDay };
  });
}

const mean = (a: readonly number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
const sd = (a: readonly number[]): number => {
  const m = mean(a);
  return Math.sqrt(mean(a.map((v) => (v - m) ** 2)));
};

interface TruthPair {
  student: number;
  topic: number;
  truth: number;
  quiz: number;
}

function truthPairs(o: Setting): { pairs: TruthPair[]; threshold: (topic: number) => number; line: string } {
  const curriculum = buildCurriculum(o.seed, o.topics);
  const cohort = buildCohort(o.seed, o.students);
  const sim = new StudentSimulator(
    { seed: o.seed, days: 63, eventsPerDay: o.eventsPerDay, startDayOfWeek: 1, truthEvery: 7 },
    curriculum,
    cohort,
  );
  const pairs: TruthPair[] = [];
  let student = 0;
  const quiz = new Map<number, number>();
  const touched = new Set<number>();
  const cut = CUT_DAY * DAY_S;
  const touch = (topic: number, t: number): void => {
    if (t < cut) touched.add(topic);
  };
  const sink: EventSink = {
    beginStudent(s) {
      student = s;
      quiz.clear();
      touched.clear();
    },
    quiz(_seq, topic, t) {
      if (t < cut) quiz.set(topic, (quiz.get(topic) ?? 0) + 1);
      touch(topic, t);
    },
    video: (_seq, topic, t) => touch(topic, t),
    practice: (_seq, topic, t) => touch(topic, t),
    chatbot: (_seq, topic, t) => touch(topic, t),
    assignment(_seq, t, _chapter, _number, a, b, c) {
      for (const x of [a, b, c]) if (x >= 0) touch(x, t);
    },
    truth(topic, day, latent) {
      if (day === TRUTH_DAY && touched.has(topic))
        pairs.push({ student, topic, truth: latent, quiz: quiz.get(topic) ?? 0 });
    },
  };
  for (let s = 0; s < o.students; s++) sim.run(s, sink);
  const d = [...curriculum.difficulty];
  const line =
    `difficulty mean ${mean(d).toFixed(3)} sd ${sd(d).toFixed(3)}, prerequisites ${curriculum.prereqList.length}, ` +
    `school abilities ${[...cohort.schoolAbility].map((x) => x.toFixed(2)).join(" ")}, ` +
    `class teaching mean ${mean([...cohort.classTeaching]).toFixed(3)}`;
  return { pairs, threshold: (t) => 0.3 + 0.35 * curriculum.difficulty[t]!, line };
}

/** Share of the truth's variance carried by the group means, and the sd of those means. */
function between(pairs: readonly TruthPair[], key: (p: TruthPair) => number): { share: number; sd: number } {
  const groups = new Map<number, number[]>();
  for (const p of pairs) {
    const g = groups.get(key(p));
    if (g === undefined) groups.set(key(p), [p.truth]);
    else g.push(p.truth);
  }
  const means = new Map([...groups].map(([k, v]) => [k, mean(v)]));
  const all = pairs.map((p) => p.truth);
  const m = mean(all);
  const total = mean(all.map((v) => (v - m) ** 2));
  const part = mean(pairs.map((p) => (means.get(key(p))! - m) ** 2));
  return { share: part / total, sd: sd([...means.values()]) };
}

for (const o of parseSettings(process.env.SETTINGS ?? DEFAULT_SETTINGS)) {
  const { pairs, threshold, line } = truthPairs(o);
  const truth = pairs.map((p) => p.truth);
  const students = between(pairs, (p) => p.student);
  const topics = between(pairs, (p) => p.topic);
  const margin = pairs.map((p) => p.truth - threshold(p.topic));
  const quiz = pairs.map((p) => p.quiz).sort((a, b) => a - b);
  const pct = (f: (p: TruthPair, i: number) => boolean): string =>
    `${((100 * pairs.filter(f).length) / pairs.length).toFixed(1)}%`;
  console.log(
    `seed ${o.seed} (${o.students} students, ${o.topics} topics, ${o.eventsPerDay} events/day): ${pairs.length} pairs; ` +
      `truth mean ${mean(truth).toFixed(3)} sd ${sd(truth).toFixed(3)}; between students ${students.share.toFixed(3)} ` +
      `(sd of student means ${students.sd.toFixed(3)}), between topics ${topics.share.toFixed(3)} (sd ${topics.sd.toFixed(3)}); ` +
      `truth - item threshold mean ${mean(margin).toFixed(3)}, > 0.25 ${pct((_p, i) => margin[i]! > 0.25)}; ` +
      `quiz answers per pair mean ${mean(quiz).toFixed(1)} median ${quiz[quiz.length >> 1]}, none ${pct((p) => p.quiz === 0)}; ` +
      `truth < 0.2 ${pct((p) => p.truth < 0.2)}\n  generator draws: ${line}`,
  );
}

import type { Explanation } from "../models/explanation.ts";
import {
  ruleScoreAt,
  ruleScoreOnlyAt,
  type StoredRuleExplanation,
  type StoredRuleState,
  scoreOfBlock,
} from "../models/ruleScorer.ts";
import { decayFactor, decayTowards } from "../models/servedDecay.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import {
  DuckMasteryReadStore,
  type HistoryRow,
  type MasteryReadStore,
  type MasteryViewRow,
  type ScoreRowNeeds,
  sourceRank,
  type TopicRow,
} from "./masteryReadStore.ts";
import type { ModelTopicScore, ServedModelInfo, StudentModelScores } from "./modelScoring.ts";
import { ROLLUP_LEVELS, type RollupLevel } from "./rollups.ts";
import type { ServedTopicScore } from "./servedBody.ts";
import { explanationText } from "./storedExplanations.ts";

/**
 * What GET /mastery serves for one student: per topic, the score of the first source available in
 * `sourceOrder`, except that a teacher's correction (score_source 'teacher_override') always wins.
 * Every other stored score of the topic is listed next to it. Rollups are the chapter / subject /
 * course views (serving/rollups.ts) of the source most of the student's topics are served from.
 */
export const TEACHER_OVERRIDE = "teacher_override";
// 'served' (serving/servedScoring.ts, issue 16) is the one calibrated estimate when it has been scored.
export const DEFAULT_SOURCE_ORDER: readonly string[] = ["served", "blend", "ml", "bkt", "rule_based", "elo"];

export interface ExperimentArm {
  experimentId: string;
  arm: string;
  /** The score source this arm serves, when the experiment compares sources. */
  scoreSource?: string;
}

export interface TopicMastery {
  topicId: string;
  name: string | null;
  chapterId: string | null;
  subjectId: string | null;
  courseId: string | null;
  score: number;
  scoreSource: string;
  modelVersion: string;
  asOf: string;
  lastUpdated: string;
  explanation: Explanation;
  experimentArm: ExperimentArm | null;
  /** Every stored score of the topic by source (including the served one). */
  scores: Record<string, { score: number; modelVersion: string; asOf: string }>;
  /** 80% interval of the served score, when its source provides one ('served'); else null. */
  interval: { lo: number; hi: number; level: number } | null;
  /** Evidence behind the served score ('measured' quiz evidence, 'indirect' other events only, 'prior' none). */
  evidence: { kind: string; attempts: number; daysSinceLast: number | null } | null;
  /**
   * P(correct on an average next item) of the served score (whose `score` is P(learned), the mastery
   * scale), when its source provides it ('served'); else null.
   */
  pCorrect: number | null;
  /** The registry model's score of the topic (serving/modelScoring.ts); served unless a teacher override exists. */
  model?: (ModelTopicScore & { served: boolean }) | null;
}

export interface RollupEntry {
  id: string;
  score: number;
  topicsScored: number;
  topicsTotal: number;
}

export interface StudentMastery {
  studentKey: string;
  topics: TopicMastery[];
  rollups: { scoreSource: string | null } & Record<RollupLevel, RollupEntry[]>;
  /** Which registry model (name@version, arm) produced the ML scores, or why none did. */
  servedModel?: ServedModelInfo;
}

type MasteryRow = MasteryViewRow;

/** The embedded store, or any MasteryReadStore (serving/masteryReadStore.ts: DuckDB or PostgreSQL). */
export type MasterySource = DuckStore | MasteryReadStore;

export function readStoreOf(source: MasterySource): MasteryReadStore {
  return "masteryRows" in source ? source : new DuckMasteryReadStore(source);
}

/** What readStudentMastery and studentMasteryJson take besides the store and the student. */
export interface StudentMasteryOptions {
  sourceOrder?: readonly string[];
  arm?: ExperimentArm | null;
  /** Topic metadata loader (the server caches it); default: read the topics table. */
  topics?: () => Promise<TopicMeta>;
  /** Registry model scores (serving/modelScoring.ts): served over the stored sources, below teacher_override. */
  model?: StudentModelScores;
  /** The student's rows of store.masteryRows when the caller already read them (one query, not two). */
  rows?: MasteryViewRow[];
  /**
   * Request time: a 'served' score stored as of an earlier time is decayed to it and a rule score is
   * taken as of it (its evidence decayed, recency as of it: rowAtReadTime); default: each score as of its
   * own scoring time.
   */
  now?: Date;
}

/** One topic of the view before it is rendered (as objects, or as the body's JSON text). */
interface ServedTopic {
  topicId: string;
  /** The topic's rows as of read time, in stored order (the body's `scores`). */
  list: MasteryRow[];
  /** The served row; its explanation is a JSON text. */
  served: MasteryRow;
  m: ModelTopicScore | undefined;
  fromModel: boolean;
  /** The served row's body texts when its decay was spliced (decaySplicedRow). */
  parts: ExplanationJson | undefined;
}

interface ServedSelection {
  arm: ExperimentArm | null;
  topics: ServedTopic[];
  rollups: StudentMastery["rollups"];
  iso: (d: Date) => string;
}

/** The source ranking of the served row: the arm's source first, then the order asked (or the default). */
function servedOrder(opts: Pick<StudentMasteryOptions, "arm" | "sourceOrder">): string[] {
  const arm = opts.arm ?? null;
  return [
    ...(arm?.scoreSource !== undefined ? [arm.scoreSource] : []),
    ...(opts.sourceOrder ?? DEFAULT_SOURCE_ORDER),
  ];
}

/**
 * What studentMasteryJson / readStudentMastery with these options read of the rows beyond score, model
 * version and as_of (MasteryReadStore.scoreRows' `needs`): the served row's ranking (selectServed's), and
 * the sources whose listed score is computed from their text (rule_based: ruleRowScoreAt; the decaying
 * ones: decayedScoreRow).
 */
export function scoreRowNeeds(opts: Pick<StudentMasteryOptions, "arm" | "sourceOrder">): ScoreRowNeeds {
  return { order: servedOrder(opts), first: TEACHER_OVERRIDE, explained: EXPLAINED_SOURCES };
}

/** Which row each topic serves, the rows as of read time, and the rollups: what both renderings share. */
async function selectServed(
  source: MasterySource,
  studentKey: string,
  opts: StudentMasteryOptions,
  splice = false,
): Promise<ServedSelection> {
  const arm = opts.arm ?? null;
  const order = servedOrder(opts);
  const store = readStoreOf(source);
  const stored = opts.rows ?? (await store.masteryRows(studentKey));
  const now = opts.now;
  // Rows grouped by topic as stored; the served one is chosen by its source alone (rank), before read time.
  const byTopic = new Map<string, MasteryRow[]>();
  for (const r of stored) {
    const list = byTopic.get(r.topic_id);
    if (list) list.push(r);
    else byTopic.set(r.topic_id, [r]);
  }
  const rank = (source: string): number => sourceRank(source, order, TEACHER_OVERRIDE);
  // Rows of one scoring run share their times: each distinct instant is formatted once per body.
  const isoOf = new Map<number, string>();
  const iso = (d: Date): string => {
    const t = d.getTime();
    let s = isoOf.get(t);
    if (s === undefined) {
      s = d.toISOString();
      isoOf.set(t, s);
    }
    return s;
  };
  const topics: ServedTopic[] = [];
  const servedCount = new Map<string, number>();
  const modelServed = new Map<string, number>();
  for (const [topicId, storedList] of byTopic) {
    // The first row by (rank, source name): one pass (as sorting a copy and taking [0], which it replaced).
    let chosen = storedList[0]!;
    let bestRank = rank(chosen.score_source);
    for (let i = 1; i < storedList.length; i++) {
      const r = storedList[i]!;
      const k = rank(r.score_source);
      if (k < bestRank || (k === bestRank && r.score_source.localeCompare(chosen.score_source) < 0)) {
        chosen = r;
        bestRank = k;
      }
    }
    // The rows as of read time. Rule and decaying rows that are listed, not served, get their score only
    // (ruleScoreOnlyAt, decayedScoreRow); the served one's explanation is built once (ruleRowAt; the decay
    // spliced into the text, decaySplicedRow, or decayServedRow), and a decayed served row is listed as it
    // is (its score and as_of are decayedScoreRow's). A cache miss lists ~100 topics' scores. A row read with
    // its stored numbers (MasteryViewRow.stored) is used without its text where it is a rule block
    // (storedRuleBlock); otherwise its text is rendered where it is read (textRow: the served row, here unless
    // it is a rule row, whose text its branch builds).
    let stored = chosen.score_source === "rule_based" ? chosen : textRow(chosen);
    let parts: ExplanationJson | undefined;
    const list: MasteryRow[] = new Array(storedList.length);
    for (let i = 0; i < storedList.length; i++) {
      const row = storedList[i]!;
      if (row.score_source === "rule_based") {
        const at = now ?? row.as_of;
        const block = storedRuleBlock(row);
        if (block === undefined) {
          const r = textRow(row);
          list[i] = { ...r, mastery_score: ruleRowScoreAt(r, at), as_of: at };
          if (row === chosen) stored = ruleRowAt(r, at);
        } else {
          // ruleRowScoreAt / ruleRowAt of the rendered text, without rendering it and parsing it back.
          const atUs = at.getTime() * 1000;
          list[i] = { ...row, mastery_score: ruleScoreOnlyAt(block, row.mastery_score, atUs), as_of: at };
          if (row === chosen) {
            const r = scoreOfBlock(block, atUs);
            stored = {
              ...row,
              mastery_score: r.score,
              as_of: at,
              explanation: JSON.stringify(r.explanation),
            };
          }
        }
        continue;
      }
      const r = row === chosen ? stored : DECAYING_SOURCES.has(row.score_source) ? textRow(row) : row;
      if (now === undefined) list[i] = r;
      else if (row === chosen) {
        if (splice) {
          const spliced = decaySplicedRow(r, now);
          stored = spliced.row;
          parts = spliced.parts;
        } else stored = decayServedRow(r, now);
        list[i] = stored;
      } else list[i] = decayedScoreRow(r, now);
    }
    const m = opts.model?.topics.get(topicId);
    const fromModel = m !== undefined && stored.score_source !== TEACHER_OVERRIDE;
    const served: MasteryRow = fromModel
      ? {
          ...stored,
          mastery_score: m.score,
          score_source: m.scoreSource,
          model_version: m.modelVersion,
          as_of: new Date(m.asOf),
          explanation: JSON.stringify(m.explanation),
        }
      : stored;
    if (fromModel) modelServed.set(topicId, m.score);
    if (served.score_source !== TEACHER_OVERRIDE) {
      servedCount.set(served.score_source, (servedCount.get(served.score_source) ?? 0) + 1);
    }
    topics.push({ topicId, list, served, m, fromModel, parts: fromModel ? undefined : parts });
  }
  let rollupSource: string | null = null;
  let best = 0;
  for (const [source, n] of servedCount) {
    if (n > best || (n === best && rollupSource !== null && rank(source) < rank(rollupSource))) {
      rollupSource = source;
      best = n;
    }
  }
  const rollups = {
    scoreSource: rollupSource,
    chapter: [],
    subject: [],
    course: [],
  } as StudentMastery["rollups"];
  if (rollupSource !== null) {
    const meta = await (opts.topics ?? (() => loadTopicMeta(store)))();
    const scores = new Map<string, number>();
    for (const { topicId, list } of topics) {
      const fromModel = opts.model?.info.scoreSource === rollupSource ? modelServed.get(topicId) : undefined;
      const r = list.find((x) => x.score_source === rollupSource);
      if (fromModel !== undefined) scores.set(topicId, fromModel);
      else if (r) scores.set(topicId, r.mastery_score);
    }
    for (const level of ROLLUP_LEVELS) rollups[level] = rollupLevel(meta, level, scores);
  }
  return { arm, topics, rollups, iso };
}

/** The student's served scores (see the module comment); an unknown student has no topics. */
export async function readStudentMastery(
  source: MasterySource,
  studentKey: string,
  opts: StudentMasteryOptions = {},
): Promise<StudentMastery> {
  const { arm, topics: selected, rollups, iso } = await selectServed(source, studentKey, opts);
  const topics: TopicMastery[] = selected.map(({ topicId, list, served, m, fromModel }) => {
    const scores: TopicMastery["scores"] = {};
    for (const r of list) {
      scores[r.score_source] = {
        score: r.mastery_score,
        modelVersion: r.model_version,
        asOf: iso(r.as_of),
      };
    }
    const explanation = JSON.parse(served.explanation) as TopicMastery["explanation"] & {
      interval?: TopicMastery["interval"];
      evidence?: TopicMastery["evidence"];
      pCorrect?: number;
    };
    return {
      topicId,
      name: served.name,
      chapterId: served.chapter_id,
      subjectId: served.subject_id,
      courseId: served.course_id,
      score: served.mastery_score,
      scoreSource: served.score_source,
      modelVersion: served.model_version,
      asOf: iso(served.as_of),
      lastUpdated: iso(served.last_updated),
      explanation,
      interval: explanation.interval ?? null,
      evidence: explanation.evidence ?? null,
      pCorrect: explanation.pCorrect ?? null,
      experimentArm: arm,
      scores,
      ...(opts.model !== undefined ? { model: m === undefined ? null : { ...m, served: fromModel } } : {}),
    };
  });
  return {
    studentKey,
    topics,
    rollups,
    ...(opts.model !== undefined ? { servedModel: opts.model.info } : {}),
  };
}

/** A GET /mastery body as text, with what the server keeps of it besides the bytes. */
export interface StudentMasteryJson {
  /**
   * The body's text in pieces (the head, one per topic, the tail), each well under 128 KiB: joined, byte for
   * byte JSON.stringify(readStudentMastery(...)) of the same arguments. servedBody encodes them one by one;
   * a 100-topic body with served rows is ~134 kB, and one string that long is allocated in V8's large-object
   * space (~0.5 ms a string, docs/benchmarks.md serve14), which flattening the whole text would do.
   */
  parts: readonly string[];
  /** parts joined (computed when read). */
  readonly json: string;
  /** The served topics in body order (ServedBody's `topics`). */
  topics: ServedTopicScore[];
  /** The scores served from a registry model (`model.served`), in body order: the exposures to log. */
  modelServedScores: number[];
}

/**
 * readStudentMastery's body as JSON text, without building its objects: each served explanation's stored
 * text goes into the body as it is (JSON.stringify(JSON.parse(text)) is the text itself for the texts this
 * code stores, every one written by JSON.stringify), so a cache miss neither parses nor re-serializes ~100
 * explanations; only what read time changes (a rule row's decayed evidence and recency, a served row's decay:
 * selectServed) is rebuilt (the served row's decay spliced into its stored text: decaySplicedRow). A text
 * that may not survive the round trip unchanged (whitespace, an escape, not an object) is
 * parsed and re-serialized as before. test/serving/masteryJson.test.ts checks the bytes against
 * JSON.stringify(readStudentMastery(...)).
 */
export async function studentMasteryJson(
  source: MasterySource,
  studentKey: string,
  opts: StudentMasteryOptions = {},
): Promise<StudentMasteryJson> {
  const { arm, topics: selected, rollups, iso } = await selectServed(source, studentKey, opts, true);
  const armText = JSON.stringify(arm);
  const withModel = opts.model !== undefined;
  // Each distinct instant quoted once per body (an ISO string has nothing to escape).
  const quotedIso = new Map<number, string>();
  const isoText = (d: Date): string => {
    const t = d.getTime();
    let q = quotedIso.get(t);
    if (q === undefined) {
      q = `"${iso(d)}"`;
      quotedIso.set(t, q);
    }
    return q;
  };
  const served: ServedTopicScore[] = new Array(selected.length);
  const modelServedScores: number[] = [];
  const parts: string[] = [`{"studentKey":${JSON.stringify(studentKey)},"topics":[`];
  for (let i = 0; i < selected.length; i++) {
    const { topicId, list, served: row, m, fromModel, parts: spliced } = selected[i]!;
    served[i] = { topicId, score: row.mastery_score, scoreSource: row.score_source };
    if (withModel && fromModel) modelServedScores.push(row.mastery_score);
    const e = spliced ?? explanationJson(row.explanation, decayedExplanations.get(row));
    parts.push(
      (i === 0 ? '{"topicId":' : ',{"topicId":') +
        quote(topicId) +
        field(',"name":', row.name) +
        field(',"chapterId":', row.chapter_id) +
        field(',"subjectId":', row.subject_id) +
        field(',"courseId":', row.course_id) +
        (e.score === undefined ? field(',"score":', row.mastery_score) : `,"score":${e.score}`) +
        field(',"scoreSource":', row.score_source) +
        field(',"modelVersion":', row.model_version) +
        ',"asOf":' +
        isoText(row.as_of) +
        ',"lastUpdated":' +
        isoText(row.last_updated) +
        ',"explanation":' +
        e.text +
        ',"interval":' +
        e.interval +
        ',"evidence":' +
        e.evidence +
        ',"pCorrect":' +
        e.pCorrect +
        ',"experimentArm":' +
        armText +
        ',"scores":' +
        scoresJson(list, isoText, iso, row, e.score) +
        (withModel
          ? `,"model":${m === undefined ? "null" : JSON.stringify({ ...m, served: fromModel })}`
          : "") +
        "}",
    );
  }
  parts.push(
    `],"rollups":${JSON.stringify(rollups)}${withModel ? `,"servedModel":${JSON.stringify(opts.model?.info)}` : ""}}`,
  );
  return {
    parts,
    get json() {
      return parts.join("");
    },
    topics: served,
    modelServedScores,
  };
}

/** `prefix` and the value as JSON.stringify writes an object's property, or nothing when it omits it (undefined). */
function field(prefix: string, v: unknown): string {
  if (typeof v === "string") return prefix + quote(v);
  if (typeof v === "number") return prefix + (Number.isFinite(v) ? String(v) : "null");
  const t = JSON.stringify(v) as string | undefined;
  return t === undefined ? "" : prefix + t;
}

/**
 * JSON.stringify(s): a string with nothing to escape (no quote, backslash, control character or surrogate)
 * in quotes, else JSON.stringify's own. The body's ~1,000 short strings take half the time this way.
 */
function quote(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 || c === 34 || c === 92 || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/** A topic's `scores` object as JSON.stringify writes the one readStudentMastery builds. */
function scoresJson(
  list: readonly MasteryRow[],
  isoText: (d: Date) => string,
  iso: (d: Date) => string,
  served: MasteryRow,
  servedScore: string | undefined,
): string {
  let out = "{";
  for (let i = 0; i < list.length; i++) {
    const r = list[i]!;
    const key = r.score_source;
    // An array-index key moves to the front of an object, a repeated one keeps its first place with the
    // last value: build the object then (never for stored rows, whose sources are distinct names).
    if (isIndexKey(key) || list.findIndex((x) => x.score_source === key) !== i) {
      const scores: TopicMastery["scores"] = {};
      for (const x of list)
        scores[x.score_source] = {
          score: x.mastery_score,
          modelVersion: x.model_version,
          asOf: iso(x.as_of),
        };
      return JSON.stringify(scores);
    }
    const inner =
      (r === served && servedScore !== undefined
        ? `,"score":${servedScore}`
        : field(',"score":', r.mastery_score)) +
      field(',"modelVersion":', r.model_version) +
      `,"asOf":${isoText(r.as_of)}`;
    out += `${i === 0 ? "" : ","}${quote(key)}:{${inner.slice(1)}}`;
  }
  return `${out}}`;
}
const DAY_MS = 86_400_000;

/**
 * Sources whose stored explanation carries `decay` (and interval, evidence, P(correct)): the served
 * estimate and the latent filter's own estimate (serving/latentScoring.ts); both are decayed at read time.
 */
export const DECAYING_SOURCES: ReadonlySet<string> = new Set(["served", "latent"]);
/** The sources whose listed score selectServed computes from the row's text (scoreRowNeeds). */
const EXPLAINED_SOURCES: readonly string[] = ["rule_based", ...DECAYING_SOURCES];

/** What a served explanation (serving/servedScoring.ts) carries for request-time decay. */
interface DecayableExplanation extends Explanation {
  interval?: { lo: number; hi: number; level: number };
  evidence?: { kind: string; attempts: number; daysSinceLast: number | null };
  pCorrect?: number;
  decay?: { halfLifeDays: number; floor: number; pFloor: number };
  forgetting?: { scoredAt: string; elapsedDays: number; contribution: number };
}

/**
 * A stored 'served' (or 'latent') row as of `now` (issue 16, item 2): the score, its interval and P(correct) move towards
 * the topic's floor with the half-life fitted on the log (models/servedDecay.ts), over the days from the
 * row's as_of to `now`; days since the last evidence grow by the same; as_of becomes `now`. The change goes
 * into the explanation's `rest` (base + factors + rest = score still holds) and is shown as `forgetting`.
 * Only the stored fields are read: no query. Rows of other sources, rows without `decay` (scored by an
 * older model), a pair without events (evidence.daysSinceLast null: the model's prior does not move with time)
 * and `now` not after as_of are returned as they are.
 */
export function decayServedRow<
  R extends Pick<MasteryViewRow, "score_source" | "as_of" | "mastery_score" | "explanation">,
>(row: R, now: Date): R {
  if (!DECAYING_SOURCES.has(row.score_source)) return row;
  const elapsed = (now.getTime() - row.as_of.getTime()) / DAY_MS;
  if (!(elapsed > 0)) return row;
  const e = JSON.parse(row.explanation) as DecayableExplanation;
  const d = e.decay;
  if (d === undefined || !(d.halfLifeDays > 0)) return row;
  // A pair without events (the prior, shifted by the student's offset) has nothing to forget: the model scores
  // it the same at any later time, so read time leaves it as stored.
  if (e.evidence !== undefined && e.evidence.daysSinceLast === null) return row;
  const at = (v: number) => decayTowards(v, d.floor, d.halfLifeDays, elapsed);
  const score = at(row.mastery_score);
  const out: DecayableExplanation = {
    ...e,
    score,
    rest: e.rest + (score - row.mastery_score),
    forgetting: {
      scoredAt: row.as_of.toISOString(),
      elapsedDays: elapsed,
      contribution: score - row.mastery_score,
    },
  };
  if (e.interval !== undefined)
    out.interval = { ...e.interval, lo: at(e.interval.lo), hi: at(e.interval.hi) };
  if (e.pCorrect !== undefined) out.pCorrect = decayTowards(e.pCorrect, d.pFloor, d.halfLifeDays, elapsed);
  if (e.evidence !== undefined && e.evidence.daysSinceLast !== null)
    out.evidence = { ...e.evidence, daysSinceLast: e.evidence.daysSinceLast + elapsed };
  const moved = { ...row, mastery_score: score, as_of: now, explanation: JSON.stringify(out) };
  decayedExplanations.set(moved, out);
  return moved;
}

/** The explanation object behind each row decayServedRow made (studentMasteryJson reads its fields, not the text again). */
const decayedExplanations = new WeakMap<object, DecayableExplanation>();

/**
 * The stored served / latent explanation's tail as JSON.stringify writes servedExplanation's and
 * latentExplanation's (rest, score, interval, evidence, P(correct), decay last), matched from its `,"rest":`.
 * The numbers kept as stored (KEPT_GROUPS) are checked to be spelled as String() spells them (a text
 * JSON.stringify wrote); the recomputed ones are read with Number() (the text is taken to be valid JSON, as
 * stored); strings hold no quote (the text has no backslash).
 */
const NUM = "(-?\\d[\\d.e+-]*)";
const SERVED_TAIL = new RegExp(
  `,"rest":${NUM},"score":${NUM},"interval":\\{"lo":${NUM},"hi":${NUM},"level":${NUM}\\},` +
    `"evidence":\\{"kind":("[^"]*"),"attempts":${NUM},"daysSinceLast":(null|${NUM})\\},"pCorrect":${NUM},` +
    `"decay":\\{"halfLifeDays":${NUM},"floor":${NUM},"pFloor":${NUM}\\}\\}$`,
  "y",
);
/** Texts the splice leaves to decayServedRow: whitespace or an escape (a respelling), a `forgetting` already in. */
const NOT_SPLICED = /[\s\\]|"forgetting"/;

/** SERVED_TAIL's groups of numbers the splice keeps as stored: level, attempts, half-life, floor, P floor. */
const KEPT_GROUPS = [5, 7, 11, 12, 13];

/**
 * True only when `s` is the text String(Number(s)) gives, by its digits alone (no number conversion, ~6x
 * cheaper): an optional "-" (not on "0"), then "0" or a digit string without leading zero of at most 21
 * digits, then optionally "." and digits ending in a non-zero, at most 15 significant digits in all, and at
 * most five zeros after "0." (from 1e-6 up String() writes no exponent). A decimal of at most 15 significant
 * digits is the shortest text of its double (15-digit decimals round-trip through a double, so two of them
 * never share one), which is what String() writes. False says nothing (the caller then converts).
 */
export function ownSpelling(s: string): boolean {
  const n = s.length;
  let i = s.charCodeAt(0) === 45 ? 1 : 0;
  const negative = i === 1;
  let c = s.charCodeAt(i);
  if (!(c >= 48 && c <= 57)) return false;
  let sig = 0;
  if (c === 48) {
    i++;
    if (i === n) return !negative;
    if (s.charCodeAt(i) !== 46) return false;
    i++;
    let zeros = 0;
    while (i < n && s.charCodeAt(i) === 48) {
      zeros++;
      i++;
    }
    if (zeros > 5 || i === n) return false;
  } else {
    for (c = s.charCodeAt(i); i < n && c >= 48 && c <= 57; c = s.charCodeAt(++i)) sig++;
    if (sig > 21) return false;
    if (i === n) return sig <= 15;
    if (s.charCodeAt(i) !== 46) return false;
    i++;
    if (i === n) return false;
  }
  let last = 0;
  for (c = s.charCodeAt(i); i < n && c >= 48 && c <= 57; c = s.charCodeAt(++i)) {
    sig++;
    last = c;
  }
  return i === n && last > 48 && sig <= 15;
}

/** toISOString of the last instant asked (the rows of one scoring run share their as_of). */
let lastIso: { t: number; s: string } = { t: Number.NaN, s: "" };
function isoOf(d: Date): string {
  const t = d.getTime();
  if (t !== lastIso.t) lastIso = { t, s: d.toISOString() };
  return lastIso.s;
}

/** JSON.stringify of a number. */
function num(v: number): string {
  return Number.isFinite(v) ? String(v) : "null";
}

/** num of the last elapsed days asked (the rows of one scoring run, read at one instant, share them). */
let lastElapsed = { v: Number.NaN, s: "" };
function elapsedText(v: number): string {
  if (!Object.is(v, lastElapsed.v)) lastElapsed = { v, s: num(v) };
  return lastElapsed.s;
}

/**
 * decayServedRow(row, now) without parsing or re-serializing the explanation: the values read time changes
 * (score, rest, interval lo / hi, days since the last evidence, P(correct), and `forgetting` appended) are
 * spliced into the stored text, the rest of it kept as stored; the explanation is byte for byte decayServedRow's
 * for a text JSON.stringify wrote (test/serving/masteryJson.test.ts). A text in any other shape goes through
 * decayServedRow. Returned with the body's interval, evidence, pCorrect and score texts (`parts`) when spliced.
 */
function decaySplicedRow<
  R extends Pick<MasteryViewRow, "score_source" | "as_of" | "mastery_score" | "explanation">,
>(row: R, now: Date): { row: R; parts?: ExplanationJson } {
  if (!DECAYING_SOURCES.has(row.score_source)) return { row };
  const elapsed = (now.getTime() - row.as_of.getTime()) / DAY_MS;
  if (!(elapsed > 0)) return { row };
  const text = row.explanation;
  const j = text.lastIndexOf(',"rest":');
  if (j <= 0 || text.charCodeAt(0) !== 123 || NOT_SPLICED.test(text))
    return { row: decayServedRow(row, now) };
  SERVED_TAIL.lastIndex = j;
  const t = SERVED_TAIL.exec(text);
  if (t === null) return { row: decayServedRow(row, now) };
  // The numbers kept as stored (level, attempts, decay) must be spelled as String() spells them (what JSON.parse
  // then JSON.stringify would write), else the slow way; the recomputed ones are written anew.
  for (const i of KEPT_GROUPS) {
    const k = t[i]!;
    if (!ownSpelling(k) && String(Number(k)) !== k) return { row: decayServedRow(row, now) };
  }
  const halfLifeDays = Number(t[11]);
  // No event: nothing to forget (decayServedRow).
  if (!(halfLifeDays > 0) || t[9] === undefined) return { row };
  const floor = Number(t[12]);
  // decayTowards's arithmetic with its factor computed once for the row's four values (the same doubles).
  const f = decayFactor(halfLifeDays, elapsed);
  const at = (x: number) => floor + (x - floor) * f;
  const score = at(row.mastery_score);
  const contribution = score - row.mastery_score;
  const interval = `{"lo":${num(at(Number(t[3])))},"hi":${num(at(Number(t[4])))},"level":${t[5]}}`;
  const evidence = `{"kind":${t[6]},"attempts":${t[7]},"daysSinceLast":${
    t[9] === undefined ? "null" : num(Number(t[9]) + elapsed)
  }}`;
  const pFloor = Number(t[13]);
  const p = num(pFloor + (Number(t[10]) - pFloor) * f);
  const scoreText = num(score);
  const explanation =
    `${text.slice(0, j)},"rest":${num(Number(t[1]) + contribution)},"score":${scoreText},"interval":${interval},` +
    `"evidence":${evidence},"pCorrect":${p},"decay":{"halfLifeDays":${t[11]},"floor":${t[12]},"pFloor":${t[13]}},` +
    `"forgetting":{"scoredAt":"${isoOf(row.as_of)}","elapsedDays":${elapsedText(elapsed)},"contribution":${num(contribution)}}}`;
  return {
    row: { ...row, mastery_score: score, as_of: now, explanation },
    parts: { text: explanation, interval, evidence, pCorrect: p, score: scoreText },
  };
}

/**
 * decayServedRow's mastery_score and as_of alone (the explanation left as stored), for a listed row that is
 * not served. The served explanation puts `decay` last (serving/servedScoring.ts servedExplanation), so only
 * that tail is parsed; a text where it is not the last key (the tail does not parse) goes through
 * decayServedRow. Rows decayServedRow returns as they are are returned as they are.
 */
function decayedScoreRow<
  R extends Pick<MasteryViewRow, "score_source" | "as_of" | "mastery_score" | "explanation">,
>(row: R, now: Date): R {
  if (!DECAYING_SOURCES.has(row.score_source)) return row;
  const elapsed = (now.getTime() - row.as_of.getTime()) / DAY_MS;
  if (!(elapsed > 0)) return row;
  const e = row.explanation;
  const j = e.lastIndexOf('"decay":{');
  let d: DecayableExplanation["decay"];
  try {
    d = j < 0 ? undefined : (JSON.parse(e.slice(j + 8, -1)) as DecayableExplanation["decay"]);
  } catch {
    return decayServedRow(row, now);
  }
  if (d === undefined) return decayServedRow(row, now);
  // No event: nothing to forget (decayServedRow); the evidence block comes right before `decay`.
  if (!(d.halfLifeDays > 0) || e.lastIndexOf('"daysSinceLast":null}', j) > e.lastIndexOf('"evidence":{', j))
    return row;
  return {
    ...row,
    mastery_score: decayTowards(row.mastery_score, d.floor, d.halfLifeDays, elapsed),
    as_of: now,
  };
}

/**
 * A stored rule_based row as of `at` (issue 17 item 3): the rule-scoring job stores the pair's decayed
 * evidence (models/ruleScorer.ts StoredRuleExplanation, its `rule` block); here the score and its top 3
 * factors are computed as of `at` (ruleScoreAt: the evidence decayed to `at`, recency as of `at`) and as_of
 * becomes `at`. Rows of other sources and rule rows without a block (no signal, or stored by an older form
 * of the scorer until the next run replaces them) are returned as they are.
 */
export function ruleRowAt<
  R extends Pick<MasteryViewRow, "score_source" | "as_of" | "mastery_score" | "explanation">,
>(row: R, at: Date): R {
  if (row.score_source !== "rule_based") return row;
  const e = JSON.parse(row.explanation) as StoredRuleExplanation;
  if (e.rule === undefined) return row;
  const r = ruleScoreAt(e, at.getTime() * 1000);
  return { ...row, mastery_score: r.score, as_of: at, explanation: JSON.stringify(r.explanation) };
}

/**
 * The rule block of a row read with its stored numbers (MasteryViewRow.stored), to be used as it is: the block
 * ruleRowAt / ruleRowScoreAt would parse back from the row's rendered text (JSON.stringify of storedRuleScore:
 * the block is its last key). Every number of the block is a finite double other than -0 (JSON.parse gives
 * such a number back to the bit; -0 comes back as 0, a non-finite one as null), or undefined: the caller then
 * reads the rendered text (textRow).
 */
function storedRuleBlock(row: MasteryRow): StoredRuleState | undefined {
  const s = row.stored;
  if (s === undefined || !("rule" in s)) return undefined;
  const b = s.rule;
  const exact = (x: number) => Number.isFinite(x) && !Object.is(x, -0);
  if (
    !exact(b.prior) ||
    !exact(b.refUs) ||
    !exact(b.lastUs) ||
    !exact(b.evidence) ||
    !exact(b.shrinkageK) ||
    !exact(b.evidenceHalfLifeDays) ||
    !exact(b.inactivityHalfLifeDays) ||
    !exact(b.partSum) ||
    !exact(b.recencyWeight)
  )
    return undefined;
  for (const f of b.factors) if (!exact(f.value) || !exact(f.part)) return undefined;
  return b;
}

/**
 * The row with its explanation text: a row read with its stored numbers (MasteryViewRow.stored, explanation "")
 * gets the text they stand for (serving/storedExplanations.ts explanationText); any other row is returned as it is.
 */
function textRow<R extends MasteryRow>(row: R): R {
  if (row.stored === undefined) return row;
  const { stored, ...rest } = row;
  return { ...rest, explanation: explanationText(row.explanation, stored, row.mastery_score) } as R;
}

/**
 * ruleRowAt's score alone. The stored form puts the `rule` block last (models/ruleScorer.ts storedOf), so
 * only that tail is parsed; rows without one keep their stored score.
 */
export function ruleRowScoreAt(row: Pick<MasteryViewRow, "mastery_score" | "explanation">, at: Date): number {
  const e = row.explanation;
  const j = e.lastIndexOf('"rule":{');
  if (j < 0) return row.mastery_score;
  const block = JSON.parse(e.slice(j + 7, -1)) as StoredRuleState;
  return ruleScoreOnlyAt(block, row.mastery_score, at.getTime() * 1000);
}

/**
 * What a reader shows for a stored row as of the request time `now`: a rule score as of `now` (as of its
 * own as_of when `now` is not given), a served score decayed to `now` (decayServedRow);
 * other rows as stored. The alert check reads through this; GET /mastery (and its rollups, hence the
 * recommendations) does the same with a score-only path for listed rows; history entries and the stack's
 * inputs (hence the export) use ruleRowAt; SQL readers serving/readTimeScoreSql.ts.
 */
export function rowAtReadTime<
  R extends Pick<MasteryViewRow, "score_source" | "as_of" | "mastery_score" | "explanation">,
>(row: R, now: Date | undefined): R {
  if (row.score_source === "rule_based") return ruleRowAt(row, now ?? row.as_of);
  return now === undefined ? row : decayServedRow(row, now);
}

/** Topic hierarchy and rollup weights (as serving/rollups.ts topic_rollup_weights defines them). */
export interface TopicMeta {
  level: Record<RollupLevel, Map<string, string>>;
  weight: Map<string, number>;
  totals: Record<RollupLevel, Map<string, number>>;
}

export async function loadTopicMeta(source: MasterySource): Promise<TopicMeta> {
  return topicMetaOf(await readStoreOf(source).topics());
}

/** Rollup metadata of the topics table's rows. */
export function topicMetaOf(rows: readonly TopicRow[]): TopicMeta {
  const positive = rows.map((r) => r.content_length).filter((x): x is number => x !== null && x > 0);
  const fallback = positive.length > 0 ? positive.reduce((a, b) => a + b, 0) / positive.length : 1;
  const meta: TopicMeta = {
    level: { chapter: new Map(), subject: new Map(), course: new Map() },
    weight: new Map(),
    totals: { chapter: new Map(), subject: new Map(), course: new Map() },
  };
  for (const r of rows) {
    meta.weight.set(
      r.topic_id,
      r.content_length !== null && r.content_length > 0 ? r.content_length : fallback,
    );
    for (const level of ROLLUP_LEVELS) {
      const id = r[`${level}_id`];
      if (id === null) continue;
      meta.level[level].set(r.topic_id, id);
      meta.totals[level].set(id, (meta.totals[level].get(id) ?? 0) + 1);
    }
  }
  return meta;
}

/**
 * One rollup level for one student and source, in JS with the formula of the mastery_by_* views
 * (serving/rollups.ts): sum(w * score) / sum(w) over the level's scored topics; a test checks both
 * agree. Computed here so a cache miss costs one query instead of three view scans.
 */
export function rollupLevel(
  meta: TopicMeta,
  level: RollupLevel,
  scores: ReadonlyMap<string, number>,
): RollupEntry[] {
  const acc = new Map<string, { sw: number; w: number; n: number }>();
  for (const [topicId, score] of scores) {
    const id = meta.level[level].get(topicId);
    if (id === undefined) continue;
    const w = meta.weight.get(topicId) ?? 1;
    const a = acc.get(id) ?? { sw: 0, w: 0, n: 0 };
    a.sw += w * score;
    a.w += w;
    a.n++;
    acc.set(id, a);
  }
  return [...acc.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, a]) => ({
      id,
      score: a.sw / a.w,
      topicsScored: a.n,
      topicsTotal: meta.totals[level].get(id) ?? a.n,
    }));
}

export interface HistoryEntry {
  /**
   * True on the one entry appended when the history is read as of a request time (`now`): the latest
   * served score decayed to it (decayServedRow); not a stored run.
   */
  projected?: true;
  score: number;
  scoreSource: string;
  modelVersion: string;
  asOf: string;
  recordedAt: string;
  explanation: unknown;
  /** For sources that carry them ('served', 'latent'): the 80% interval, the evidence and P(correct), as in GET /mastery. */
  interval?: TopicMastery["interval"];
  evidence?: TopicMastery["evidence"];
  pCorrect?: number;
}

const historyEntry = (r: HistoryRow): HistoryEntry => {
  const explanation = JSON.parse(r.explanation) as DecayableExplanation;
  return {
    score: r.mastery_score,
    scoreSource: r.score_source,
    modelVersion: r.model_version,
    asOf: r.as_of.toISOString(),
    recordedAt: r.recorded_at.toISOString(),
    explanation,
    ...(explanation.interval !== undefined ? { interval: explanation.interval } : {}),
    ...(explanation.evidence !== undefined ? { evidence: explanation.evidence } : {}),
    ...(explanation.pCorrect !== undefined ? { pCorrect: explanation.pCorrect } : {}),
  };
};

/**
 * The history as of `now`: when the latest served run has a decay and is older than `now`, one more entry
 * (`projected: true`) with that score decayed to `now`, so a chart shows forgetting since the last run. Rule
 * entries are each shown as of their own run (ruleRowAt gives a stored rule row as of any time); GET /mastery
 * shows the rule score as of `now`.
 */
export function withProjection(rows: readonly HistoryRow[], now: Date | undefined): HistoryEntry[] {
  // Each rule entry as of its own run, its explanation without the stored `rule` block.
  const out = rows.map((r) => historyEntry(r.score_source === "rule_based" ? ruleRowAt(r, r.as_of) : r));
  if (now === undefined) return out;
  const latest = (source: string): HistoryRow | undefined => {
    let last: HistoryRow | undefined;
    for (const r of rows)
      if (r.score_source === source && (last === undefined || r.as_of >= last.as_of)) last = r;
    return last;
  };
  const served = latest("served");
  if (served !== undefined) {
    const d = decayServedRow(served, now);
    if (d !== served) out.push({ ...historyEntry({ ...d, recorded_at: now }), projected: true });
  }
  return out;
}

/**
 * JSON.stringify(withProjection(rows, now)), byte for byte, without the entries' objects (GET
 * /mastery/:id/:topic/history; issue 15). The history route's cost grows with the history: a hot student's topic
 * has one entry per source and POST that touched it (hundreds in the load bench), and each entry was parsed from
 * its stored text, a rule entry's rebuilt text parsed once more, and all of it serialized again. Here a stored
 * text goes into the array as it is, as GET /mastery's body does (explanationJson: a text JSON.stringify wrote
 * is its own round trip); a rule entry's text is JSON.stringify of its explanation as of its run (ruleRowAt's,
 * parsed once); a text that may not round-trip unchanged (whitespace, an escape, not an object) and a text
 * naming interval, evidence or pCorrect are parsed, as before.
 */
export function historyJson(rows: readonly HistoryRow[], now: Date | undefined): string {
  return historyJsonAt(historyJsonParts(rows), now);
}

/**
 * historyJson in the two parts a cache keeps apart: the stored entries' text (the same at any request time)
 * and the latest served row, from which historyJsonAt makes the projected entry as of a request's time.
 */
export interface HistoryJsonParts {
  /** The stored entries, each as historyJson writes it, joined by commas (no brackets). */
  readonly entries: string;
  /** The latest 'served' row (the one withProjection decays to `now`), or undefined: then no time changes the text. */
  readonly latestServed: HistoryRow | undefined;
}

/** historyJson's parts of a history (see HistoryJsonParts). */
export function historyJsonParts(rows: readonly HistoryRow[]): HistoryJsonParts {
  // A group's rows share their times (ordered by recorded_at, as_of): each instant is formatted once.
  const text = new HistoryText();
  const parts: string[] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) parts[i] = text.entry(rows[i]!);
  let served: HistoryRow | undefined;
  for (const r of rows)
    if (r.score_source === "served" && (served === undefined || r.as_of >= served.as_of)) served = r;
  return { entries: parts.join(","), latestServed: served };
}

/** historyJson(rows, now) from historyJsonParts(rows): the entries, then the projected entry as of `now` if any. */
export function historyJsonAt(parts: HistoryJsonParts, now: Date | undefined): string {
  const served = parts.latestServed;
  if (now !== undefined && served !== undefined) {
    // withProjection's projected entry: the latest served run decayed to `now`, `projected` its last key.
    const d = decayServedRow(served, now);
    if (d !== served)
      return `[${parts.entries},${new HistoryText().entry({ ...d, recorded_at: now }).slice(0, -1)},"projected":true}]`;
  }
  return `[${parts.entries}]`;
}

/** The three explanation keys an entry lists beside it (historyEntry). */
type ExplanationFields = { interval?: unknown; evidence?: unknown; pCorrect?: unknown };

/** Date.prototype.toISOString with the last instant remembered (and an invalid date failing as it does). */
class IsoMemo {
  private t = Number.NaN;
  private text = "";
  of(d: Date): string {
    const t = d.getTime();
    if (t !== this.t) {
      this.text = d.toISOString();
      this.t = t;
    }
    return this.text;
  }
}

/** historyJson's entries: JSON.stringify(historyEntry(r)) of a row as withProjection shows it (a rule row as of its own run). */
class HistoryText {
  private readonly asOf = new IsoMemo();
  private readonly recordedAt = new IsoMemo();

  entry(r: HistoryRow): string {
    // A key JSON.stringify would omit (a store's row without the column): the entry as historyEntry builds it.
    if (r.mastery_score === undefined || r.score_source === undefined || r.model_version === undefined)
      return JSON.stringify(historyEntry(r.score_source === "rule_based" ? ruleRowAt(r, r.as_of) : r));
    const t = r.explanation;
    if (r.score_source === "rule_based") {
      // ruleRowAt(r, r.as_of), its explanation used as the object it is instead of its text parsed back.
      const e = JSON.parse(t) as StoredRuleExplanation;
      if (e.rule !== undefined) {
        const at = ruleScoreAt(e, r.as_of.getTime() * 1000);
        return this.json(r, at.score, JSON.stringify(at.explanation), at.explanation as ExplanationFields);
      }
    }
    const object = t.charCodeAt(0) === 123;
    // One pass over the text for the common case: an object written by JSON.stringify naming none of the three.
    if (object && !NOT_AS_IS_OR_FIELDS.test(t)) return this.json(r, r.mastery_score, t, undefined);
    if (object && !NOT_AS_IS.test(t)) return this.json(r, r.mastery_score, t, JSON.parse(t));
    // Whitespace, an escape, or not an object: the entry as historyEntry builds it (and fails it).
    return JSON.stringify(historyEntry(r));
  }

  /**
   * The entry's text: each key as JSON.stringify writes historyEntry's object, `text` the explanation's JSON,
   * `fields` the explanation whose interval, evidence and pCorrect are listed (a key whose value JSON.stringify
   * omits is omitted; none when undefined: the text names none of them).
   */
  private json(r: HistoryRow, score: number, text: string, fields: ExplanationFields | undefined): string {
    return (
      field('{"score":', score) +
      field(',"scoreSource":', r.score_source) +
      field(',"modelVersion":', r.model_version) +
      `,"asOf":"${this.asOf.of(r.as_of)}","recordedAt":"${this.recordedAt.of(r.recorded_at)}","explanation":${text}` +
      (fields === undefined
        ? "}"
        : `${field(',"interval":', fields.interval)}${field(',"evidence":', fields.evidence)}${field(',"pCorrect":', fields.pCorrect)}}`)
    );
  }
}

/** Every recorded change of one (student, topic), oldest first (plus the projection as of `now`, when given). */
export async function readHistory(
  source: MasterySource,
  studentKey: string,
  topicId: string,
  now?: Date,
): Promise<HistoryEntry[]> {
  return withProjection(await readStoreOf(source).history(studentKey, topicId), now);
}

export interface TopicHistory {
  topicId: string;
  history: HistoryEntry[];
}

/**
 * The histories of several topics of one student from one query (the dashboard's student page):
 * `topicIds` in the order given (a topic without history gets an empty list), or, when null, every
 * topic with history, sorted by topic_id (code-unit order). Each list is oldest first, as readHistory's.
 */
export async function readStudentHistories(
  source: MasterySource,
  studentKey: string,
  topicIds: readonly string[] | null,
  now?: Date,
): Promise<TopicHistory[]> {
  const rowsByTopic = new Map<string, HistoryRow[]>();
  for (const r of await readStoreOf(source).studentHistory(studentKey)) {
    const list = rowsByTopic.get(r.topic_id);
    if (list) list.push(r);
    else rowsByTopic.set(r.topic_id, [r]);
  }
  const byTopic = new Map<string, HistoryEntry[]>();
  for (const [t, rows] of rowsByTopic) byTopic.set(t, withProjection(rows, now));
  const ids = topicIds ?? [...byTopic.keys()].sort();
  return ids.map((topicId) => ({ topicId, history: byTopic.get(topicId) ?? [] }));
}

/** A property name an object orders before the others (an array index: "0" .. "4294967294"). */
const isIndexKey = (k: string): boolean => /^(?:0|[1-9][0-9]{0,9})$/.test(k) && Number(k) < 4294967295;

/** The served explanation's parts of a topic in the body: its text and the three fields taken from it. */
interface ExplanationJson {
  text: string;
  interval: string;
  evidence: string;
  pCorrect: string;
  /** The served score's text, when the caller has it (num of the row's mastery_score). */
  score?: string;
}

/**
 * A text JSON.stringify wrote is what JSON.stringify(JSON.parse(text)) gives; in another writer's text
 * whitespace or an escape could be spelled otherwise, so a text with either is parsed and re-serialized.
 * The three fields are read from the top level of the parsed explanation: a text without their names has none.
 */
const NOT_AS_IS = /[\s\\]/;
const NOT_AS_IS_OR_FIELDS = /[\s\\]|"(?:interval|evidence|pCorrect)"/;

/** `parsed`: the explanation whose JSON.stringify `text` is, when the caller has it (a decayed row's). */
function explanationJson(text: string, parsed?: DecayableExplanation): ExplanationJson {
  if (parsed !== undefined)
    return {
      text,
      interval: JSON.stringify(parsed.interval ?? null),
      evidence: JSON.stringify(parsed.evidence ?? null),
      pCorrect: JSON.stringify(parsed.pCorrect ?? null),
    };
  // One regular expression over the text: ~4x faster than seven `includes` (docs/benchmarks.md, serve12).
  const object = text.charCodeAt(0) === 123;
  if (object && !NOT_AS_IS_OR_FIELDS.test(text))
    return { text, interval: "null", evidence: "null", pCorrect: "null" };
  const e = JSON.parse(text) as { interval?: unknown; evidence?: unknown; pCorrect?: unknown };
  return {
    text: object && !NOT_AS_IS.test(text) ? text : JSON.stringify(e),
    interval: JSON.stringify(e.interval ?? null),
    evidence: JSON.stringify(e.evidence ?? null),
    pCorrect: JSON.stringify(e.pCorrect ?? null),
  };
}

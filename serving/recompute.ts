import { replayEvents, replayOrder } from "../models/learnerState.ts";
import type { MasteryStore } from "../storage/masteryStore.ts";
import type { LearnerRow, RawEventStore } from "../storage/rawEventStore.ts";
import { STATE_NUMBER_FIELDS, type StateStore, type StoredLearnerState } from "../storage/stateStore.ts";
import { foldLatentColumns, studentOffsetOfStates } from "./latentStream.ts";
import type { BktEloModels } from "./learnerState.ts";
import { topicParamsResolver } from "./learnerState.ts";
import { foldRuleColumns, RULE_SOURCE, type RuleColumns, ruleStateOf } from "./ruleStream.ts";
import { explanationText } from "./storedExplanations.ts";
import { firstIngestedRows, learnerEvent, stateScores } from "./updater.ts";

/**
 * The reconciliation: replays every raw event, per (student, topic), through the same functions as
 * the updater (models/learnerState.ts replayEvents: first ingested copy wins, (ts, event_id) order;
 * and masteryScores), and compares the result with what the stream left in learner_state and
 * student_mastery. Differences are expected to be 0: the stream's state is the fold of exactly the
 * events it processed, in the same order, so once every event is processed both are the same
 * numbers, bit for bit. The one exception is the rule state (serving/ruleStream.ts) and its 'rule_based' row:
 * the stream merges each group of new events into the stored sums, which adds them in another order than one
 * fold, so those are compared within RULE_RELATIVE_TOLERANCE (relative, per sum; absolute for the score and
 * the explanation's numbers, which lie in [0, 1] or are their parts).
 */

export interface TableReconciliation {
  table: "learner_state" | "student_mastery";
  /** Rows expected by the replay. */
  expected: number;
  /** Rows found in the store. */
  actual: number;
  /** Rows present in both and compared field by field. */
  compared: number;
  /** Expected rows the store lacks. */
  missing: number;
  /** Store rows the replay does not produce. */
  extra: number;
  /** Compared rows with at least one differing field. */
  differences: number;
  /** Largest absolute difference of a numeric field over the compared rows (0 when equal). */
  maxAbsDiff: number;
  /** learner_state: largest relative difference of a rule state's sum (within RULE_RELATIVE_TOLERANCE is equal). */
  maxRuleRelDiff: number;
  /** A few differing keys with the first differing field, for a human to look at. */
  examples: string[];
}

export interface RecomputeReport {
  events: number;
  keys: number;
  tables: TableReconciliation[];
  /** True when every table has 0 missing, extra and differing rows. */
  ok: boolean;
}

export interface RecomputeOptions {
  onProgress?: (doneKeys: number, totalKeys: number) => void;
}

const SOURCES = ["bkt", "elo"] as const;
/** Written by the stream with a served model's latent filter (serving/latentStream.ts). */
const LATENT_SOURCES = ["latent", "served"] as const;

/** How far a streamed rule sum (or score) may be from the replay's: float rounding of merged sums. */
export const RULE_RELATIVE_TOLERANCE = 1e-9;

/**
 * The first difference of two stored rule states beyond RULE_RELATIVE_TOLERANCE (relative per sum; the
 * folded event count and the model version exactly), or undefined; `maxRel` gets the largest relative one.
 */
function ruleStateDiff(a: RuleColumns, e: RuleColumns, track: { maxRel: number }): string | undefined {
  if ((a.ruleModelVersion ?? null) !== (e.ruleModelVersion ?? null)) return "rule model versions differ";
  const x = ruleStateOf(a);
  const y = ruleStateOf(e);
  if (x === null || y === null) return x === y ? undefined : "rule state missing on one side";
  for (const c of Object.keys(y) as (keyof typeof y)[]) {
    const d = Math.abs(x[c] - y[c]);
    if (d === 0) continue;
    const rel = d / Math.max(Math.abs(x[c]), Math.abs(y[c]));
    if (rel > track.maxRel) track.maxRel = rel;
    if (rel > RULE_RELATIVE_TOLERANCE) return `rule ${c} ${x[c]} != ${y[c]}`;
  }
  return undefined;
}

/** Byte-for-byte equality of two stored latent states (null = none). */
function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function emptyTable(table: TableReconciliation["table"]): TableReconciliation {
  return {
    table,
    expected: 0,
    actual: 0,
    compared: 0,
    missing: 0,
    extra: 0,
    differences: 0,
    maxAbsDiff: 0,
    maxRuleRelDiff: 0,
    examples: [],
  };
}

const keyId = (a: string, b: string, c = ""): string => `${a}\u0000${b}\u0000${c}`;
const show = (id: string) => id.replaceAll("\u0000", "/").replace(/\/$/, "");

export async function recompute(
  stores: { raw: RawEventStore; state: StateStore; mastery: MasteryStore },
  models: BktEloModels,
  opts: RecomputeOptions = {},
): Promise<RecomputeReport> {
  const paramsFor = topicParamsResolver(models);
  const events = await stores.raw.allEvents();
  const expectedState = new Map<string, StoredLearnerState>();
  const expectedScores = new Map<
    string,
    { score: number; modelVersion: string; asOfUs: number; explanation: string }
  >();

  // Count keys first, for the progress bar.
  let totalKeys = 0;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const prev = events[i - 1];
    if (prev === undefined || prev.student_key !== e.student_key || prev.topic_id !== e.topic_id) totalKeys++;
  }
  const byStudent = new Map<string, { topicId: string; state: StoredLearnerState }[]>();
  let k = 0;
  let done = 0;
  while (k < events.length) {
    const first = events[k]!;
    const keyEvents: LearnerRow[] = [];
    for (; k < events.length; k++) {
      const e = events[k]!;
      if (e.student_key !== first.student_key || e.topic_id !== first.topic_id) break;
      keyEvents.push(e);
    }
    // replayEvents dedupes and sorts with the fold's own comparison, so a collation difference
    // between engines cannot change the order.
    const params = paramsFor(first.topic_id);
    const learner = keyEvents.map(learnerEvent);
    const s = replayEvents(learner, params);
    // The latent filter's state (with a served model): the same fold over the same replay order.
    const latent = foldLatentColumns(
      models.latent,
      first.topic_id,
      models.latent === undefined ? [] : replayOrder(learner),
      null,
    );
    // The rule state (with a rule model): one fold of the first ingested copies in (ts, event_id) order.
    const rule = foldRuleColumns(models.rule, firstIngestedRows(keyEvents), null, s.eventN);
    const stored: StoredLearnerState = {
      ...s,
      bktModelVersion: models.bktVersion,
      eloModelVersion: models.eloVersion,
      ...latent,
      ...rule,
    };
    expectedState.set(keyId(first.student_key, first.topic_id), stored);
    const l = byStudent.get(first.student_key) ?? [];
    l.push({ topicId: first.topic_id, state: stored });
    byStudent.set(first.student_key, l);
    done++;
    if (done % 1000 === 0) opts.onProgress?.(done, totalKeys);
  }
  opts.onProgress?.(done, totalKeys);
  // Scores after every key's state: a student effect's offset spans the student's pairs (0 without one).
  for (const [student, pairs] of byStudent) {
    const offset = studentOffsetOfStates(models.latent, pairs);
    for (const { topicId, state } of pairs)
      for (const sc of stateScores(state, topicId, paramsFor(topicId), models, offset))
        expectedScores.set(keyId(student, topicId, sc.source), {
          score: sc.score,
          modelVersion: sc.modelVersion,
          asOfUs: state.lastTs ?? 0,
          explanation: sc.explanation,
        });
  }

  // learner_state
  const st = emptyTable("learner_state");
  st.expected = expectedState.size;
  const actualStates = await stores.state.all();
  st.actual = actualStates.length;
  const seenState = new Set<string>();
  for (const a of actualStates) {
    const id = keyId(a.studentKey, a.topicId);
    seenState.add(id);
    const e = expectedState.get(id);
    if (e === undefined) {
      st.extra++;
      continue;
    }
    st.compared++;
    let firstDiff: string | undefined;
    for (const f of STATE_NUMBER_FIELDS) {
      const d = Math.abs(a.state[f] - e[f]);
      if (d > st.maxAbsDiff) st.maxAbsDiff = d;
      if (a.state[f] !== e[f]) firstDiff ??= `${f} ${a.state[f]} != ${e[f]}`;
    }
    if (a.state.lastTs !== e.lastTs) firstDiff ??= `lastTs ${a.state.lastTs} != ${e.lastTs}`;
    if (a.state.lastEventId !== e.lastEventId)
      firstDiff ??= `lastEventId ${a.state.lastEventId} != ${e.lastEventId}`;
    if (a.state.bktModelVersion !== e.bktModelVersion || a.state.eloModelVersion !== e.eloModelVersion)
      firstDiff ??= "model versions differ";
    if ((a.state.latentModelVersion ?? null) !== (e.latentModelVersion ?? null))
      firstDiff ??= "latent model versions differ";
    else if (!sameBytes(a.state.latent ?? null, e.latent ?? null))
      firstDiff ??= "latent filter state differs";
    const track = { maxRel: st.maxRuleRelDiff };
    firstDiff ??= ruleStateDiff(a.state, e, track);
    st.maxRuleRelDiff = track.maxRel;
    if (firstDiff !== undefined) {
      st.differences++;
      if (st.examples.length < 5) st.examples.push(`${show(id)}: ${firstDiff}`);
    }
  }
  for (const id of expectedState.keys()) if (!seenState.has(id)) st.missing++;

  // student_mastery (the bkt and elo rows)
  const sm = emptyTable("student_mastery");
  sm.expected = expectedScores.size;
  const actualScores = await stores.mastery.all([
    ...SOURCES,
    ...(models.latent === undefined ? [] : LATENT_SOURCES),
    ...(models.rule === undefined ? [] : [RULE_SOURCE]),
  ]);
  sm.actual = actualScores.length;
  const seenScores = new Set<string>();
  for (const a of actualScores) {
    const id = keyId(a.student_key, a.topic_id, a.score_source);
    seenScores.add(id);
    const e = expectedScores.get(id);
    if (e === undefined) {
      sm.extra++;
      continue;
    }
    sm.compared++;
    let firstDiff: string | undefined;
    // A streamed rule row comes from merged sums: equal within the tolerance (module comment).
    const tol = a.score_source === RULE_SOURCE ? RULE_RELATIVE_TOLERANCE : 0;
    const d = Math.abs(a.mastery_score - e.score);
    if (d > sm.maxAbsDiff) sm.maxAbsDiff = d;
    if (d > tol) firstDiff = `mastery_score ${a.mastery_score} != ${e.score}`;
    if (a.model_version !== e.modelVersion)
      firstDiff ??= `model_version ${a.model_version} != ${e.modelVersion}`;
    if (a.as_of_us !== e.asOfUs) firstDiff ??= `as_of ${a.as_of_us} != ${e.asOfUs}`;
    const ed = explanationDiff(
      explanationText(a.explanation, a.explanation_numbers, a.mastery_score),
      e.explanation,
      tol,
    );
    if (ed.maxAbs > sm.maxAbsDiff) sm.maxAbsDiff = ed.maxAbs;
    if (ed.differs) firstDiff ??= "explanation differs";
    if (firstDiff !== undefined) {
      sm.differences++;
      if (sm.examples.length < 5) sm.examples.push(`${show(id)}: ${firstDiff}`);
    }
  }
  for (const id of expectedScores.keys()) if (!seenScores.has(id)) sm.missing++;

  const tables = [st, sm];
  return {
    events: events.length,
    keys: expectedState.size,
    tables,
    ok: tables.every((t) => t.missing === 0 && t.extra === 0 && t.differences === 0),
  };
}

/**
 * Compares two explanation JSON texts: numbers by absolute difference (equal within `tol`; for a rule row's
 * `rule` block, relative to the larger magnitude), everything else exactly.
 */
function explanationDiff(actual: string, expected: string, tol = 0): { differs: boolean; maxAbs: number } {
  if (actual === expected) return { differs: false, maxAbs: 0 };
  let maxAbs = 0;
  let differs = false;
  const walk = (a: unknown, b: unknown): void => {
    if (typeof a === "number" && typeof b === "number") {
      const d = Math.abs(a - b);
      if (d > maxAbs) maxAbs = d;
      if (d > tol * Math.max(1, Math.abs(a), Math.abs(b))) differs = true;
      return;
    }
    if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
      const ka = Object.keys(a);
      const kb = Object.keys(b);
      if (ka.length !== kb.length) differs = true;
      for (const k of ka) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
      return;
    }
    if (a !== b) differs = true;
  };
  try {
    const parse = (text: string): unknown =>
      tol > 0 ? withoutNegligibleFactors(JSON.parse(text), tol) : JSON.parse(text);
    walk(parse(actual), parse(expected));
  } catch {
    differs = true;
  }
  return { differs, maxAbs };
}

/**
 * A rule row's explanation in the form the recompute compares: each `factors` list reduced to its
 * contributions (or stored parts), in descending order (signed: +c and -c of equal size tie in the top 3's
 * order by magnitude), without those within `tol` of 0. The row is a
 * function of the rule state, which the learner_state check compares sum by sum; merged sums may still break
 * a tie differently from one fold (seen in the chaos audit: video_completion at part -5e-18 against
 * hint_usage at 0; video_completion +0.0245 against practice_success -0.0245 from fuzzed events), so which of two equal factors is listed may differ.
 * The amounts must match; names of tied factors need not.
 */
export function withoutNegligibleFactors(x: unknown, tol: number): unknown {
  if (Array.isArray(x)) return x.map((v) => withoutNegligibleFactors(v, tol));
  if (typeof x !== "object" || x === null) return x;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) {
    if (k === "factors" && Array.isArray(v)) {
      out[k] = v
        .map((f) => {
          const r = f as { contribution?: unknown; part?: unknown };
          return r.contribution ?? r.part;
        })
        .filter((c): c is number => typeof c === "number" && Math.abs(c) > tol)
        .sort((a, b) => b - a);
    } else out[k] = withoutNegligibleFactors(v, tol);
  }
  return out;
}

/** The report as a small text table. */
export function formatReport(r: RecomputeReport): string {
  const lines = [
    `replayed ${r.events} events over ${r.keys} (student, topic) keys`,
    "table            expected    actual  compared  missing  extra  differences  max_abs_diff",
  ];
  for (const t of r.tables) {
    lines.push(
      `${t.table.padEnd(15)} ${String(t.expected).padStart(9)} ${String(t.actual).padStart(9)} ${String(t.compared).padStart(9)} ` +
        `${String(t.missing).padStart(8)} ${String(t.extra).padStart(6)} ${String(t.differences).padStart(12)}  ${t.maxAbsDiff.toExponential(2)}`,
    );
    for (const ex of t.examples) lines.push(`  e.g. ${ex}`);
  }
  lines.push(r.ok ? "OK: the streamed state equals the replay" : "MISMATCH: see the differences above");
  return lines.join("\n");
}

import { compareEvents } from "../models/learnerState.ts";
import {
  decodeRuleState,
  encodeRuleState,
  foldRuleEvents,
  mergeRuleStates,
  type RuleConfig,
  type RuleEvent,
  type RuleState,
  storedRuleRow,
} from "../models/ruleScorer.ts";
import type { MasteryScore } from "../storage/masteryStore.ts";
import type { LearnerRow } from "../storage/rawEventStore.ts";
import type { StoredLearnerState } from "../storage/stateStore.ts";
import { DEFAULT_RULE_CONFIG, loadRuleConfig } from "./ruleScoring.ts";

/**
 * The rule scorer in the stream ("fresh within seconds", issue 17 items 2-3): the updater carries each
 * (student, topic)'s decayed rule state (models/ruleScorer.ts RuleState, encoded with the count of the key's
 * events it folds) in learner_state next to BKT/Elo, merges each group of new events into it
 * (mergeRuleStates) and writes the 'rule_based' row (the score as of the key's last event, its top 3 factors
 * and the `rule` block read time decays, as the rule-scoring job stores it) with the key's BKT/Elo scores,
 * under the same compare-and-set. A redelivered event is in the key's processed set, so it is never merged
 * twice; a late event (before the key's cursor) rebuilds the key from its stored events as BKT's late-event
 * rule does, which refolds the rule state in (ts, event_id) order, the batch's canonical order
 * (storage/ruleStateSql.ts).
 *
 * Forward merges add sums in another order than one fold, so a stream-built state equals the batch's refold
 * within float rounding (1e-9 relative, tested), not to the bit; the daily batch refolds every pair with an
 * event ingested after its watermark (the stream's events included) and replaces the stream's row.
 *
 * A stored rule state is continued only when it is of this rule model (config and scorer form) and folds as
 * many events as the key's BKT/Elo state (eventN): a state a batch job left behind while it moved the
 * key's BKT/Elo state (it does not fold rule states) is rebuilt from the key's events.
 */

export interface StreamRule {
  config: RuleConfig;
  /** rule-<hash> (serving/ruleScoring.ts loadRuleConfig): learner_state's rule_model_version. */
  modelVersion: string;
}

export const RULE_SOURCE = "rule_based";

/** The rule config at `path` (default config/rule-weights.yaml) for the stream. */
export function loadStreamRule(path = DEFAULT_RULE_CONFIG): StreamRule {
  const { config, modelVersion } = loadRuleConfig(path);
  return { config, modelVersion };
}

export type RuleColumns = Pick<StoredLearnerState, "rule" | "ruleModelVersion">;

const NONE: RuleColumns = { rule: null, ruleModelVersion: null };

/** A raw event row as the rule scorer reads it. */
export function ruleEventOf(r: LearnerRow): RuleEvent {
  return {
    tUs: r.ts_us,
    type: r.type,
    isCorrect: r.is_correct,
    hintsUsed: r.hints_used,
    attempts: r.attempts,
    correctCount: r.correct_count,
    watchPct: r.watch_pct,
    scorePct: r.score_pct,
  };
}

/** The stored rule state of `s` when `rule` can continue it (same model, as many events as BKT/Elo folded). */
function storedRuleState(rule: StreamRule, s: StoredLearnerState): RuleState | null {
  if (s.rule == null || s.ruleModelVersion !== rule.modelVersion) return null;
  const d = decodeRuleState(s.rule);
  return d !== null && d.eventN === s.eventN ? d.state : null;
}

/** Whether a stored state's rule part can be continued by `rule` (always, without a rule model: none is kept). */
export function ruleUsable(rule: StreamRule | undefined, s: StoredLearnerState): boolean {
  return rule === undefined || storedRuleState(rule, s) !== null;
}

/**
 * The rule columns after merging `rows` (events the key's state does not hold yet, deduped) into `from` (a
 * state ruleUsable accepts, or null for a rebuild from the key's events), for a key whose BKT/Elo state then
 * folds `eventN` events. The rows are folded in (ts, event_id) order, then merged.
 */
export function foldRuleColumns(
  rule: StreamRule | undefined,
  rows: readonly LearnerRow[],
  from: StoredLearnerState | null,
  eventN: number,
): RuleColumns {
  if (rule === undefined) return NONE;
  const ordered = [...rows].sort((a, b) =>
    compareEvents({ ts: a.ts_us, eventId: a.event_id }, { ts: b.ts_us, eventId: b.event_id }),
  );
  const h = rule.config.evidenceHalfLifeDays;
  const fresh = foldRuleEvents(ordered.map(ruleEventOf), h);
  const state = mergeRuleStates(from === null ? null : storedRuleState(rule, from), fresh, h);
  if (state === null) return NONE;
  return { rule: encodeRuleState(state, eventN), ruleModelVersion: rule.modelVersion };
}

/** The decoded rule state of stored columns (null: none, or of another layout). */
export function ruleStateOf(columns: RuleColumns): RuleState | null {
  return columns.rule == null ? null : (decodeRuleState(columns.rule)?.state ?? null);
}

/** The 'rule_based' row of a stored state as of its last event (none without a rule state). */
export function ruleScores(rule: StreamRule | undefined, columns: RuleColumns): MasteryScore[] {
  if (rule === undefined || columns.ruleModelVersion !== rule.modelVersion) return [];
  const state = ruleStateOf(columns);
  if (state === null) return [];
  const r = storedRuleRow(state, state.last_us, rule.config);
  return [
    {
      source: RULE_SOURCE,
      score: r.score,
      modelVersion: rule.modelVersion,
      explanation: JSON.stringify(r.explanation),
    },
  ];
}

/**
 * Students of the embedded file whose student_mastery rows are shaped as the daily batch writes them, for the
 * cold-read benches (bench/coldRead.bench.ts COLD_STORE=duckdb): per topic a bkt and an elo row stored as
 * their explanation's numbers (serving/learnerState.ts), a rule_based row stored as its rule block
 * (serving/ruleScoring.ts), both with an empty explanation, and, with `served`, a decaying 'served' row with
 * its text (serving/servedScoring.ts servedExplanation's shape, full-precision numbers, the latent filter's factor
 * names), with `latent` also the 'latent' row the served step stores beside it (the same shape, each factor's
 * value its contribution). The numbers come from
 * the models' own code over a drawn event log per (student, topic), from a fixed seed: every run and tree
 * stores the same rows.
 */
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import {
  applyEvent,
  bktExplanationNumbers,
  eloExplanationNumbers,
  eloMastery,
  initialLearnerState,
  type LearnerEvent,
  topicParamsResolver,
} from "../models/learnerState.ts";
import { mulberry32 } from "../models/prng.ts";
import {
  foldRuleEvents,
  type RuleEvent,
  type StoredRuleExplanation,
  storedRuleRow,
} from "../models/ruleScorer.ts";
import { loadRuleConfig } from "../serving/ruleScoring.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { ruleBlockValues } from "../storage/explanationNumbers.ts";
import { EXPLANATION_NUMBER_COLUMNS, RULE_BLOCK_COLUMNS, ruleBlockColumnType } from "../storage/schema.ts";
import { baseTable } from "../storage/servingTables.ts";

const DAY_US = 86_400e6;

/**
 * Seeds topics W0..W(topics-1) and, for students `${prefix}-0` .. `${prefix}-(students-1)`, their batch rows as
 * of `asOf` (events in the 30 days before it). Returns the students' keys.
 */
export async function seedBatchRows(
  duck: DuckStore,
  pseudo: Pseudonymizer,
  opts: {
    students: number;
    topics: number;
    served: boolean;
    /** Also a 'latent' row per served row (the daily batch's served step writes both). */
    latent?: boolean;
    asOf: Date;
    prefix?: string;
    /**
     * The base's row order: "student" (default: the rows as drawn, a student's next to each other, as the
     * batch's sorted writes leave them) or "spread" (hash order: as a file the batch wrote before mastery22's sorted writes,
     * or the load bench's seeded store).
     */
    layout?: "student" | "spread";
  },
): Promise<string[]> {
  const prefix = opts.prefix ?? "wide";
  const topicRows = Array.from(
    { length: opts.topics },
    (_, i) => `('W${i}', 'Wide ${i}', 'WC${i % 10}', 'S2', 'K1', 0, 10)`,
  );
  await duck.run(
    `INSERT INTO topics (topic_id, name, chapter_id, subject_id, course_id, difficulty_estimate, content_length) VALUES ${topicRows.join(",")}`,
  );
  const rule = loadRuleConfig();
  const params = topicParamsResolver({});
  const asOfUs = opts.asOf.getTime() * 1000;
  const numberCols = [...EXPLANATION_NUMBER_COLUMNS, ...RULE_BLOCK_COLUMNS];
  await duck.run(
    `CREATE OR REPLACE TEMP TABLE batch_seed (student_key VARCHAR, topic_id VARCHAR, mastery_score DOUBLE,
       score_source VARCHAR, model_version VARCHAR, as_of_us DOUBLE, explanation VARCHAR,
       ${numberCols.map((c) => `${c} ${c === "rule_centered" ? ruleBlockColumnType(c) : "DOUBLE"}`).join(", ")})`,
  );
  const draw = mulberry32(20261206);
  const keys: string[] = [];
  const blockValues: (number | boolean | null)[] = [];
  await duck.appendRows("batch_seed", (app) => {
    const row = (
      key: string,
      topic: string,
      score: number,
      source: string,
      version: string,
      rowAsOfUs: number,
      explanation: string,
      ex: readonly (number | null)[] | null,
      block: readonly (number | boolean | null)[] | null,
    ) => {
      app.appendVarchar(key);
      app.appendVarchar(topic);
      app.appendDouble(score);
      app.appendVarchar(source);
      app.appendVarchar(version);
      app.appendDouble(rowAsOfUs);
      app.appendVarchar(explanation);
      for (let c = 0; c < EXPLANATION_NUMBER_COLUMNS.length; c++) {
        const v = ex?.[c] ?? null;
        if (v === null) app.appendNull();
        else app.appendDouble(v);
      }
      for (let c = 0; c < RULE_BLOCK_COLUMNS.length; c++) {
        const v = block?.[c] ?? null;
        if (v === null) app.appendNull();
        else if (typeof v === "boolean") app.appendBoolean(v);
        else app.appendDouble(v);
      }
      app.endRow();
    };
    for (let s = 0; s < opts.students; s++) {
      const key = pseudo.studentKey(`${prefix}-${s}`);
      keys.push(key);
      const skill = draw();
      for (let t = 0; t < opts.topics; t++) {
        const topic = `W${t}`;
        const p = params(topic);
        // A month of work on the topic: quiz attempts (answers right more often for a stronger student),
        // sometimes practice, a video or an assignment.
        const quizzes = 3 + Math.floor(draw() * 25);
        const ruleEvents: RuleEvent[] = [];
        const quizEvents: LearnerEvent[] = [];
        for (let q = 0; q < quizzes; q++) {
          const tUs = asOfUs - Math.floor(draw() * 30 * DAY_US) - 1;
          const isCorrect = draw() < 0.35 + 0.5 * skill;
          ruleEvents.push({ tUs, type: "quiz_attempt", isCorrect, hintsUsed: draw() < 0.2 ? 1 : 0 });
          quizEvents.push({
            eventId: `${s}-${t}-${q}`,
            type: "quiz_attempt",
            ts: tUs,
            isCorrect,
            questionId: `q${Math.floor(draw() * 40)}`,
          });
        }
        if (draw() < 0.5)
          ruleEvents.push({
            tUs: asOfUs - Math.floor(draw() * 30 * DAY_US) - 1,
            type: "practice",
            attempts: 10,
            correctCount: Math.floor(draw() * 11),
          });
        if (draw() < 0.5)
          ruleEvents.push({
            tUs: asOfUs - Math.floor(draw() * 30 * DAY_US) - 1,
            type: "video",
            watchPct: Math.floor(draw() * 101),
          });
        if (draw() < 0.3)
          ruleEvents.push({
            tUs: asOfUs - Math.floor(draw() * 30 * DAY_US) - 1,
            type: "assignment",
            scorePct: Math.floor(draw() * 101),
          });
        quizEvents.sort((a, b) => a.ts - b.ts);
        let state = initialLearnerState(p);
        for (const e of quizEvents) state = applyEvent(state, e, p);
        const exOf = (n: ReturnType<typeof bktExplanationNumbers>) => [
          n.base,
          n.correct,
          n.correctC,
          n.incorrect,
          n.incorrectC,
          n.learn,
          n.learnC,
          n.streak,
          n.streakC,
        ];
        // The BKT / Elo job's rows are as of the key's last event (serving/learnerState.ts).
        const lastUs = quizEvents[quizEvents.length - 1]!.ts;
        row(
          key,
          topic,
          state.pMastery,
          "bkt",
          "default",
          lastUs,
          "",
          exOf(bktExplanationNumbers(state, p)),
          null,
        );
        row(
          key,
          topic,
          eloMastery(state, p).score,
          "elo",
          "default",
          lastUs,
          "",
          exOf(eloExplanationNumbers(state, p)),
          null,
        );
        const ruleState = foldRuleState(ruleEvents, rule.config.evidenceHalfLifeDays, asOfUs);
        const stored = storedRuleRow(ruleState, asOfUs, rule.config);
        const block = (stored.explanation as StoredRuleExplanation).rule;
        if (block === undefined)
          row(
            key,
            topic,
            stored.score,
            "rule_based",
            rule.modelVersion,
            asOfUs,
            JSON.stringify(stored.explanation),
            null,
            null,
          );
        else
          row(
            key,
            topic,
            stored.score,
            "rule_based",
            rule.modelVersion,
            asOfUs,
            "",
            null,
            ruleBlockValues(block, blockValues),
          );
        if (opts.served) {
          const score = Math.min(1, Math.max(0, state.pMastery + (draw() - 0.5) / 5));
          const c = [draw() / 3, (draw() - 0.5) / 4, (draw() - 0.5) / 8];
          const base = score - c[0]! - c[1]! - c[2]!;
          row(
            key,
            topic,
            score,
            "served",
            "served@4",
            asOfUs,
            JSON.stringify({
              base,
              factors: [
                { name: "quiz_answers", value: draw(), contribution: c[0] },
                { name: "practice_results", value: Math.log1p(quizzes), contribution: c[1] },
                { name: "forgetting", value: p.topicDifficulty, contribution: c[2] },
              ],
              rest: 0,
              score,
              interval: {
                lo: score * (0.7 + draw() / 10),
                hi: Math.min(1, score * 1.2 + draw() / 20),
                level: 0.8,
              },
              evidence: { kind: "measured", attempts: quizzes, daysSinceLast: draw() * 30 },
              pCorrect: 0.25 + score / 2 + draw() / 100,
              decay: { halfLifeDays: 20 + draw() * 60, floor: 0.1 + draw() / 5, pFloor: 0.2 + draw() / 5 },
            }),
            null,
            null,
          );
          if (opts.latent === true) {
            const k = Math.min(1, Math.max(0, score + (draw() - 0.5) / 10));
            const lc = [(draw() - 0.3) / 3, (draw() - 0.5) / 4, -draw() / 8];
            const lb = k - lc[0]! - lc[1]! - lc[2]!;
            row(
              key,
              topic,
              k,
              "latent",
              "served@4",
              asOfUs,
              JSON.stringify({
                base: lb,
                factors: [
                  { name: "quiz_answers", value: lc[0], contribution: lc[0] },
                  { name: "learning_quiz", value: lc[1], contribution: lc[1] },
                  { name: "forgetting", value: lc[2], contribution: lc[2] },
                ],
                rest: 0,
                score: k,
                interval: { lo: k * (0.7 + draw() / 10), hi: Math.min(1, k * 1.2 + draw() / 20), level: 0.8 },
                evidence: { kind: "measured", attempts: quizzes, daysSinceLast: draw() * 30 },
                pCorrect: 0.2 + k * 0.6,
                decay: { halfLifeDays: 20 + draw() * 60, floor: 0.1 + draw() / 5, pFloor: 0.2 + draw() / 5 },
              }),
              null,
              null,
            );
          }
        }
      }
    }
  });
  const asOf = `make_timestamp(${asOfUs}::BIGINT)`;
  await duck.run(
    `INSERT INTO ${baseTable("student_mastery")} (student_key, topic_id, mastery_score, score_source, model_version,
       as_of, explanation, last_updated, ${numberCols.join(", ")})
     SELECT student_key, topic_id, mastery_score, score_source, model_version, make_timestamp(as_of_us::BIGINT),
       explanation, ${asOf},
       ${numberCols.join(", ")}
     FROM temp.batch_seed${opts.layout === "spread" ? "\n     ORDER BY hash(student_key, topic_id, score_source)" : ""}`,
  );
  await duck.run("DROP TABLE temp.batch_seed");
  await duck.run("CHECKPOINT");
  return keys;
}

/** The rule state of a pair's events as of `asOfUs` (the batch decays every state to its run's as-of). */
function foldRuleState(events: readonly RuleEvent[], halfLifeDays: number, asOfUs: number) {
  const s = foldRuleEvents(events, halfLifeDays, asOfUs);
  if (s === null) throw new Error("batchRowSeed: a pair without events");
  return s;
}

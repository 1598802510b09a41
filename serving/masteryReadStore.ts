import { type DuckColumns, type DuckReadPool, type DuckStore, StorageError } from "../storage/duckdb.ts";
import {
  STORED_NUMBERS_SELECT,
  type StoredExplanationNumbers,
  storedNumberNames,
  storedNumbersOf,
  type WithExplanationNumberColumns,
} from "../storage/explanationNumbers.ts";
import type { PgStore } from "../storage/postgres.ts";
import { newestRevisions, REVISION_SEQ, type RevisionRow, revisionsSql } from "../storage/revisionTable.ts";
import {
  BASE_ROWS,
  baseRowIdsSql,
  indexRevisionsSql,
  MAX_RUNS,
  ROW_ID,
  type RowIdRange,
  RowIdRunMemory,
  rangeRevisionsSql,
  rowIdRuns,
} from "../storage/rowIdRanges.ts";
import type { StateStore } from "../storage/stateStore.ts";
import { compareUtf8 } from "../storage/utf8Order.ts";
import { explanationText, withExplanationTexts } from "./storedExplanations.ts";

/**
 * The reads behind GET /mastery, /mastery/:id/history, /mastery/:id/:topic/history and /recommendations: student_mastery
 * (+ topic metadata), student_mastery_history, topics and the student's Elo abilities from
 * learner_state. One implementation per place the update path writes to (serving/streamStores.ts):
 * the embedded DuckDB file, or PostgreSQL (+ learner_state from the StateStore, i.e. Redis when
 * configured). So whatever the updater or the stream worker wrote is what the server returns.
 */

/** One stored score of the student joined with its topic's metadata (topic columns null when unknown). */
export type MasteryViewRow = {
  topic_id: string;
  mastery_score: number;
  score_source: string;
  model_version: string;
  as_of: Date;
  explanation: string;
  last_updated: Date;
  name: string | null;
  chapter_id: string | null;
  subject_id: string | null;
  course_id: string | null;
  /**
   * Only on rows of scoreRows with `needs` (GET /mastery's miss): the numbers the batch stored the explanation as
   * (storage/explanationNumbers.ts), its text not rendered (`explanation` is ""). serving/masteryView.ts computes
   * what a body shows from them: a rule row's read-time score and explanation from its block, a BKT / Elo row's
   * text only when it is served; serving/storedExplanations.ts explanationText gives the text they stand for.
   */
  stored?: StoredExplanationNumbers;
};

export type HistoryRow = {
  mastery_score: number;
  score_source: string;
  model_version: string;
  as_of: Date;
  recorded_at: Date;
  explanation: string;
};

export type StudentHistoryRow = HistoryRow & { topic_id: string };

export type TopicRow = {
  topic_id: string;
  /** The topic's display name (read by the server's topics cache to fill scoreRows' topic columns). */
  name?: string | null;
  chapter_id: string | null;
  subject_id: string | null;
  course_id: string | null;
  content_length: number | null;
  prerequisites: string[] | null;
};

export interface MasteryReadStore {
  readonly kind: "duckdb" | "postgres";
  /**
   * True when reads may run concurrently with each other and with the server's writes (a PostgreSQL
   * pool, or a DuckDB read pool); false: run them inside the server's StoreGate.
   */
  readonly concurrent: boolean;
  /** Every stored score of the student, ordered by topic_id, score_source. */
  masteryRows(studentKey: string): Promise<MasteryViewRow[]>;
  /**
   * The same rows without the join to topics (name, chapter_id, subject_id, course_id are null): for a
   * caller that fills them from its own copy of the topics table (the server's topics cache), which
   * saves the join and four columns a row on every GET /mastery miss. With `needs`, a row that can be
   * neither served nor needs its text for its listed score may come with explanation "" and last_updated =
   * as_of (neededRows; the embedded store then skips rendering a batch row's text from its numbers), and a
   * needed row the batch stored as numbers comes with them (`stored`) and explanation "" (not rendered: the
   * body's code reads the numbers); a body built from them is the one built from every row's values.
   */
  scoreRows(studentKey: string, needs?: ScoreRowNeeds): Promise<MasteryViewRow[]>;
  /** Every recorded change of one (student, topic), oldest first. */
  history(studentKey: string, topicId: string): Promise<HistoryRow[]>;
  /** Every recorded change of every topic of the student in one query: by topic_id, then oldest first. */
  studentHistory(studentKey: string): Promise<StudentHistoryRow[]>;
  topics(): Promise<TopicRow[]>;
  /**
   * Per-topic Elo ability of the student (topics without learner_state are absent). `topicIds`: the
   * student's topics when the caller has them (e.g. from its GET /mastery body), which saves the
   * query that lists them where learner_state is a key-value store.
   */
  eloAbilities(studentKey: string, topicIds?: readonly string[]): Promise<Map<string, number>>;
  /** Up to `limit` distinct student keys that have scores, any ones (the start-up warm-up reads them). */
  sampleStudentKeys(limit: number): Promise<string[]>;
}

/**
 * Which of a student's rows a GET /mastery body reads beyond their score, model version and as_of
 * (serving/masteryView.ts scoreRowNeeds). Per topic the served row is one of the lowest rank: `first`
 * ranks -1, a source at position i of `order` (its first) ranks i, any other order.length; rows of that
 * rank (ties all kept: the view breaks them) and rows of the `explained` sources (whose listed score is
 * computed from their text at read time) need their explanation and last_updated; the others' are
 * never read. On a served-row student (bkt + elo + served per topic) that is two rows of three.
 */
export interface ScoreRowNeeds {
  readonly order: readonly string[];
  readonly first: string;
  readonly explained: readonly string[];
}

/**
 * Where a score source stands in the served choice: `first` (the teacher override) before all, then the
 * sources in `order`, then any other source. The lowest rank of a topic's rows is its served row.
 */
export function sourceRank(source: string, order: readonly string[], first: string): number {
  if (source === first) return -1;
  const i = order.indexOf(source);
  return i < 0 ? order.length : i;
}

/** For each row, whether its explanation and last_updated are needed (ScoreRowNeeds). */
export function neededRows(
  rows: readonly Pick<MasteryViewRow, "topic_id" | "score_source">[],
  needs: ScoreRowNeeds,
): boolean[] {
  const ranks = rows.map((r) => sourceRank(r.score_source, needs.order, needs.first));
  const best = new Map<string, number>();
  for (let i = 0; i < rows.length; i++) {
    const t = rows[i]!.topic_id;
    const b = best.get(t);
    if (b === undefined || ranks[i]! < b) best.set(t, ranks[i]!);
  }
  return rows.map((r, i) => ranks[i] === best.get(r.topic_id) || needs.explained.includes(r.score_source));
}

/** A bounded scan: the first rows found, not the whole table (distinct in the outer query). */
const SAMPLE_KEYS_SQL = `SELECT DISTINCT student_key FROM
  (SELECT student_key FROM student_mastery LIMIT $1) s LIMIT $2`;

const MASTERY_SQL = `SELECT m.topic_id, m.mastery_score, m.score_source, m.model_version, m.as_of, m.explanation,
       m.last_updated, t.name, t.chapter_id, t.subject_id, t.course_id
  FROM student_mastery m LEFT JOIN topics t USING (topic_id)
  WHERE m.student_key = $1 ORDER BY m.topic_id, m.score_source`;
/** PostgreSQL's scoreRows: the seven stored columns only, read as arrays (PgMasteryReadStore.scoreRows). */
const SCORE_SQL = `SELECT topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated
  FROM student_mastery WHERE student_key = $1 ORDER BY topic_id, score_source`;
const historySql = (
  extra = "",
) => `SELECT mastery_score, score_source, model_version, as_of, recorded_at, explanation${extra}
  FROM student_mastery_history WHERE student_key = $1 AND topic_id = $2
  ORDER BY recorded_at, as_of, score_source`;
const studentHistorySql = (extra = "") => `SELECT topic_id, mastery_score, score_source, model_version, as_of,
       recorded_at, explanation${extra}
  FROM student_mastery_history WHERE student_key = $1
  ORDER BY topic_id, recorded_at, as_of, score_source`;
const HISTORY_SQL = historySql();
const STUDENT_HISTORY_SQL = studentHistorySql();
const TOPICS_SQL =
  "SELECT topic_id, name, chapter_id, subject_id, course_id, content_length, prerequisites FROM topics";

/**
 * The embedded file's reads of one student: the base and delta revisions of student_mastery / learner_state
 * filtered by the student, the newest per key picked in JS (storage/revisionTable.ts), not through the
 * tables' views. Rows in the order of MASTERY_SQL's ORDER BY (DuckDB orders VARCHAR by UTF-8 bytes).
 */
// The batch jobs' bkt / elo / rule rows store their explanation as numbers (storage/explanationNumbers.ts):
// read with them, the text rendered here (serving/storedExplanations.ts).
const SCORE_COLUMNS = `topic_id, mastery_score, score_source, model_version, as_of, explanation, last_updated,
  ${STORED_NUMBERS_SELECT}`;
const DUCK_MASTERY_SQL = `SELECT x.topic_id, x.mastery_score, x.score_source, x.model_version, x.as_of, x.explanation,
       x.last_updated, t.name, t.chapter_id, t.subject_id, t.course_id, x.revision_seq, ${storedNumberNames("x")}
  FROM (${revisionsSql("student_mastery", SCORE_COLUMNS, "student_key = $1")}) x LEFT JOIN topics t USING (topic_id)`;
const DUCK_SCORE_SQL = revisionsSql("student_mastery", SCORE_COLUMNS, "student_key = $1");
/**
 * The same rows with the base read as 1..MAX_RUNS row-id ranges (storage/rowIdRanges.ts), by run count; the
 * ranges' bounds are $2, $3, ...
 */
const DUCK_BASE_IDS_SQL = baseRowIdsSql("student_mastery", "student_key = $1");
const DUCK_RANGE_SCORE_SQL = Array.from({ length: MAX_RUNS }, (_, i) =>
  rangeRevisionsSql("student_mastery", SCORE_COLUMNS, "student_key = $1", i + 1, 2),
);
/** The same with the student's base rows counted by the index in the statement (a remembered student's runs). */
const DUCK_VERIFIED_RANGE_SCORE_SQL = Array.from({ length: MAX_RUNS }, (_, i) =>
  rangeRevisionsSql("student_mastery", SCORE_COLUMNS, "student_key = $1", i + 1, 2, { verify: true }),
);
/** DUCK_SCORE_SQL with the base rows' row ids (where the student's rows lie, for RowIdRunMemory). */
const DUCK_INDEX_SCORE_SQL = indexRevisionsSql("student_mastery", SCORE_COLUMNS, "student_key = $1");
const DUCK_HISTORY_SQL = historySql(`, ${STORED_NUMBERS_SELECT}`);
const DUCK_STUDENT_HISTORY_SQL = studentHistorySql(`, ${STORED_NUMBERS_SELECT}`);
const DUCK_ABILITY_SQL = revisionsSql("learner_state", "topic_id, elo_ability", "student_key = $1");

type ScoreKey = Pick<MasteryViewRow, "topic_id" | "score_source">;
const byTopicAndSource = (a: ScoreKey, b: ScoreKey): number =>
  compareUtf8(a.topic_id, b.topic_id) || compareUtf8(a.score_source, b.score_source);

/** One student's served rows with the topics join (masteryRows): the newest revision per (topic, source), in order. */
function newestScores(
  rows: (MasteryViewRow & RevisionRow & WithExplanationNumberColumns)[],
): MasteryViewRow[] {
  return withExplanationTexts(
    newestRevisions("student_mastery", rows, ["student_key"]).sort(byTopicAndSource),
  );
}

/**
 * scoreRows' rows from DUCK_SCORE_SQL's result, read by column: the newest revision per (topic, source) by
 * topic_id then score_source, each built as one object literal (topic columns null), and only the cells a row
 * uses read: none of the superseded revisions', no number column of a row without numbers. Without `needs` every
 * row's explanation is its text (rendered from its numbers where it has them); with `needs` none is rendered: a
 * needed row stored as numbers carries them (MasteryViewRow.stored, explanation ""), the rows neededRows leaves
 * out get explanation "" and last_updated = as_of. getRowObjectsJS built a ~40-column object per row and the
 * number columns were deleted off each (docs/benchmarks.md "Cold read on the embedded store, round 7").
 */
function scoreRowsOf(
  result: DuckColumns,
  needs: ScoreRowNeeds | undefined,
  check: { baseRows?: number | "counted"; ids?: (ids: number[]) => void } = {},
): MasteryViewRow[] | null {
  const topic = result.column("topic_id");
  const source = result.column("score_source");
  const seq = result.column(REVISION_SEQ);
  const keys: (ScoreKey & RevisionRow & { row: number })[] = new Array(result.rowCount);
  let base = 0;
  for (let i = 0; i < result.rowCount; i++) {
    keys[i] = {
      topic_id: topic(i) as string,
      score_source: source(i) as string,
      revision_seq: seq(i) as number,
      row: i,
    };
    if (keys[i]!.revision_seq < 0) base++;
  }
  if (check.baseRows === "counted") {
    // Remembered runs: whole when they gave as many base rows as the index counts (the same statement), else
    // the caller reads again. No row: nothing to compare with (the student's rows moved or are gone).
    if (result.rowCount === 0 || base !== (result.column(BASE_ROWS)(0) as number)) return null;
  } else if (check.baseRows !== undefined && base !== check.baseRows)
    // The ranges hold every id the index gave, in the same snapshot: fewer base rows would be a lost row.
    throw new StorageError(
      "DB_READ",
      `GET /mastery's range read found ${base} base rows of the student where the index has ${check.baseRows}: ` +
        "the two statements did not see one snapshot (DuckStore.snapshot / DuckReadPool.snapshot); report it",
    );
  if (check.ids !== undefined) {
    const id = result.column(ROW_ID);
    const ids: number[] = [];
    for (let i = 0; i < result.rowCount; i++) if (keys[i]!.revision_seq < 0) ids.push(id(i) as number);
    check.ids(ids);
  }
  const newest = newestRevisions("student_mastery", keys, ["student_key"]).sort(byTopicAndSource);
  const needed = needs === undefined ? null : neededRows(newest, needs);
  const score = result.column("mastery_score");
  const version = result.column("model_version");
  const asOf = result.column("as_of");
  const text = result.column("explanation");
  const updated = result.column("last_updated");
  const rows: MasteryViewRow[] = new Array(newest.length);
  for (let j = 0; j < newest.length; j++) {
    const k = newest[j]!;
    const i = k.row;
    const at = asOf(i) as Date;
    const r: MasteryViewRow = {
      topic_id: k.topic_id,
      mastery_score: score(i) as number,
      score_source: k.score_source,
      model_version: version(i) as string,
      as_of: at,
      explanation: "",
      last_updated: at,
      name: null,
      chapter_id: null,
      subject_id: null,
      course_id: null,
    };
    rows[j] = r;
    if (needed?.[j] === false) continue;
    r.last_updated = updated(i) as Date;
    r.explanation = text(i) as string;
    // A stored text wins over numbers (explanationText): the numbers only stand for an empty one.
    if (r.explanation !== "") continue;
    const numbers = storedNumbersOf((c) => result.column(c)(i));
    if (numbers === null) continue;
    if (needed === null) r.explanation = explanationText("", numbers, r.mastery_score);
    else r.stored = numbers;
  }
  return rows;
}

/** Row-id ranges as the range statements' bounds: lo and hi of each, in order. */
const bigintBounds = (runs: readonly RowIdRange[]): bigint[] =>
  runs.flatMap(([lo, hi]) => [BigInt(lo), BigInt(hi)]);

/**
 * The StateStore is keyed by (student, topic) and has no per-student scan (Redis hashes), so the
 * student's topics are taken from student_mastery: the updater writes a score for every key it
 * commits a state for.
 */
async function abilitiesFromState(
  state: StateStore,
  studentKey: string,
  topicIds: readonly string[],
): Promise<Map<string, number>> {
  return state.eloAbilities(studentKey, topicIds);
}

/**
 * The embedded store (the server's default). On the DuckStore itself (its one connection) run it
 * inside the server's StoreGate; on a DuckReadPool (DuckStore.readPool) reads run concurrently.
 * `state`: where learner_state lives when it is not this file (Redis without PostgreSQL); default the file.
 */
export class DuckMasteryReadStore implements MasteryReadStore {
  readonly kind = "duckdb" as const;
  readonly concurrent: boolean;
  private readonly store: Pick<DuckStore, "all" | "columns" | "snapshot">;
  /**
   * Where the students' rows lay when last read, for scoreRows' choice of read (storage/rowIdRanges.ts); null
   * (`rangeReads: false`): always through the index.
   */
  readonly memory: RowIdRunMemory | null;
  constructor(
    store: DuckStore | DuckReadPool,
    private readonly state?: StateStore,
    opts: { rangeReads?: boolean; memory?: RowIdRunMemory } = {},
  ) {
    this.store = store;
    this.concurrent = !("conn" in store);
    this.memory = opts.rangeReads === false ? null : (opts.memory ?? new RowIdRunMemory());
  }

  async masteryRows(studentKey: string): Promise<MasteryViewRow[]> {
    return newestScores(await this.store.all<MasteryViewRow & RevisionRow>(DUCK_MASTERY_SQL, [studentKey]));
  }

  /**
   * Without range reads: one statement through the student index. With them (default), as `memory` plans it
   * (storage/rowIdRanges.ts RowIdRunMemory): a student read before whose rows lay in a few short runs is read by
   * those row-id ranges in one statement that checks it got every base row (a scan decodes each vector once;
   * the index read fetches each row's ~40 columns one by one), read again as below when not; a student not seen
   * yet, while recent reads found such runs: its base row ids from the index, then the ranges or the index, both
   * statements in one snapshot; otherwise through the index, its row ids read along. Every read tells the memory
   * where the student's rows lie. The same rows whichever way.
   */
  async scoreRows(studentKey: string, needs?: ScoreRowNeeds): Promise<MasteryViewRow[]> {
    if (this.memory === null)
      return this.store.columns(DUCK_SCORE_SQL, [studentKey], (result) => scoreRowsOf(result, needs)!);
    const plan = this.memory.plan(studentKey);
    if (plan.kind === "index") return this.indexRead(studentKey, needs);
    if (plan.kind === "ranges") {
      const rows = await this.store.columns(
        DUCK_VERIFIED_RANGE_SCORE_SQL[plan.runs.length - 1]!,
        [studentKey, ...bigintBounds(plan.runs)],
        (result) => scoreRowsOf(result, needs, { baseRows: "counted" }),
      );
      if (rows !== null) {
        this.memory.learn(studentKey, plan.runs);
        return rows;
      }
    }
    return this.probeRead(studentKey, needs, this.memory);
  }

  /** The index read, learning the student's runs from the row ids it reads along. */
  private indexRead(studentKey: string, needs: ScoreRowNeeds | undefined): Promise<MasteryViewRow[]> {
    const memory = this.memory!;
    return this.store.columns(
      DUCK_INDEX_SCORE_SQL,
      [studentKey],
      (result) =>
        scoreRowsOf(result, needs, {
          ids: (ids) => memory.learn(studentKey, ids.every(Number.isSafeInteger) ? rowIdRuns(ids) : null),
        })!,
    );
  }

  /** mastery22's read: the row ids from the index, then the ranges or the index, in one snapshot. */
  private probeRead(
    studentKey: string,
    needs: ScoreRowNeeds | undefined,
    memory: RowIdRunMemory,
  ): Promise<MasteryViewRow[]> {
    return this.store.snapshot(async (q) => {
      // Rows a still open transaction of this connection added have ids from 2^62 (DuckDB's transaction-local
      // storage), beyond a double's exact integers: such a read goes through the index.
      const ids = await q.columns(DUCK_BASE_IDS_SQL, [studentKey], (result) => {
        const id = result.column("row_id");
        const out: number[] = new Array(result.rowCount);
        for (let i = 0; i < result.rowCount; i++) {
          const x = Number(id(i) as bigint);
          if (!Number.isSafeInteger(x)) return [];
          out[i] = x;
        }
        return out;
      });
      const runs = rowIdRuns(ids);
      memory.learn(studentKey, runs);
      if (runs === null)
        return q.columns(DUCK_SCORE_SQL, [studentKey], (result) => scoreRowsOf(result, needs)!);
      return q.columns(
        DUCK_RANGE_SCORE_SQL[runs.length - 1]!,
        [studentKey, ...bigintBounds(runs)],
        (result) => scoreRowsOf(result, needs, { baseRows: ids.length })!,
      );
    });
  }

  async history(studentKey: string, topicId: string): Promise<HistoryRow[]> {
    return withExplanationTexts(await this.store.all<HistoryRow>(DUCK_HISTORY_SQL, [studentKey, topicId]));
  }

  async studentHistory(studentKey: string): Promise<StudentHistoryRow[]> {
    return withExplanationTexts(
      await this.store.all<StudentHistoryRow>(DUCK_STUDENT_HISTORY_SQL, [studentKey]),
    );
  }

  topics(): Promise<TopicRow[]> {
    return this.store.all<TopicRow>(TOPICS_SQL);
  }

  async sampleStudentKeys(limit: number): Promise<string[]> {
    const rows = await this.store.all<{ student_key: string }>(SAMPLE_KEYS_SQL, [limit * 50, limit]);
    return rows.map((r) => r.student_key);
  }

  async eloAbilities(studentKey: string, topicIds?: readonly string[]): Promise<Map<string, number>> {
    if (this.state !== undefined) {
      const topics =
        topicIds ??
        (
          await this.store.all<{ topic_id: string }>(
            "SELECT DISTINCT topic_id FROM student_mastery WHERE student_key = $1",
            [studentKey],
          )
        ).map((t) => t.topic_id);
      return abilitiesFromState(this.state, studentKey, topics);
    }
    const rows = await this.store.all<{ topic_id: string; elo_ability: number } & RevisionRow>(
      DUCK_ABILITY_SQL,
      [studentKey],
    );
    return new Map(
      newestRevisions("learner_state", rows, ["student_key"]).map((r) => [r.topic_id, r.elo_ability]),
    );
  }
}

/**
 * PostgreSQL for student_mastery / history / topics (the tables PgMasteryStore writes), and the
 * updater's StateStore (Redis or DuckDB) for learner_state. Give it its own PgStore: a read must
 * not queue behind, or run inside, the writer's transaction on the writer's connection.
 */
export class PgMasteryReadStore implements MasteryReadStore {
  readonly kind = "postgres" as const;
  readonly concurrent = true;
  constructor(
    private readonly pg: PgStore,
    private readonly state: StateStore,
  ) {}

  masteryRows(studentKey: string): Promise<MasteryViewRow[]> {
    // DOUBLE PRECISION arrives as a number, TIMESTAMP as a Date in UTC (storage/postgres.ts).
    return this.pg.allPrepared<MasteryViewRow>(MASTERY_SQL, [studentKey]);
  }

  async scoreRows(studentKey: string): Promise<MasteryViewRow[]> {
    // Rows as arrays of SCORE_SQL's columns, each turned into one object literal (one shape for every
    // row): ~10% less client CPU than node-postgres' named rows with four NULL topic columns
    // (docs/benchmarks.md, serve10). Every row comes whole (no ScoreRowNeeds): ranking the sources in SQL
    // to leave out the unneeded texts cost PostgreSQL more than it saved here (docs/benchmarks.md, cold16).
    const rows = await this.pg.arraysPrepared(SCORE_SQL, [studentKey]);
    const out: MasteryViewRow[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      out[i] = {
        topic_id: r[0] as string,
        mastery_score: r[1] as number,
        score_source: r[2] as string,
        model_version: r[3] as string,
        as_of: r[4] as Date,
        explanation: r[5] as string,
        last_updated: r[6] as Date,
        name: null,
        chapter_id: null,
        subject_id: null,
        course_id: null,
      };
    }
    return out;
  }

  history(studentKey: string, topicId: string): Promise<HistoryRow[]> {
    return this.pg.allPrepared<HistoryRow>(HISTORY_SQL, [studentKey, topicId]);
  }

  studentHistory(studentKey: string): Promise<StudentHistoryRow[]> {
    return this.pg.allPrepared<StudentHistoryRow>(STUDENT_HISTORY_SQL, [studentKey]);
  }

  topics(): Promise<TopicRow[]> {
    return this.pg.all<TopicRow>(TOPICS_SQL);
  }

  async sampleStudentKeys(limit: number): Promise<string[]> {
    const rows = await this.pg.all<{ student_key: string }>(SAMPLE_KEYS_SQL, [limit * 50, limit]);
    return rows.map((r) => r.student_key);
  }

  async eloAbilities(studentKey: string, topicIds?: readonly string[]): Promise<Map<string, number>> {
    const topics =
      topicIds ??
      (
        await this.pg.all<{ topic_id: string }>(
          "SELECT DISTINCT topic_id FROM student_mastery WHERE student_key = $1",
          [studentKey],
        )
      ).map((t) => t.topic_id);
    return abilitiesFromState(this.state, studentKey, topics);
  }
}

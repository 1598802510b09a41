/**
 * Worker thread body of the rule-scoring pool (serving/ruleWorkerPool.ts): a persistent thread that scores
 * rows [from, to) of each block of shared state columns it is sent and appends
 * "rid<TAB>score<TAB>explanation<TAB>the rule block's columns" lines to its own file, which DuckDB reads in
 * parallel at the end: a row with a block has an empty explanation (readers render it from the block's
 * numbers, storage/schema.ts RULE_BLOCK_COLUMNS), one without has the prior's JSON and empty (NULL) block
 * fields. Tab-separated without quoting is safe because JSON.stringify escapes every control character
 * inside strings, so the JSON never holds a raw tab or newline; String(number) round-trips exactly through
 * DuckDB's DOUBLE parser.
 */
import { closeSync, openSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import {
  priorRuleExplanation,
  type RuleConfig,
  type RuleStateColumns,
  ruleBlockRange,
} from "../models/ruleScorer.ts";
import { ruleBlockValues } from "../storage/explanationNumbers.ts";
import { RULE_BLOCK_COLUMNS } from "../storage/schema.ts";
import { writeAllSync } from "./writeAllSync.ts";

/** Given once when the thread starts. */
export interface RuleWorkerSetup {
  config: RuleConfig;
  /** The time the stored scores are as of (microseconds since the epoch). */
  asOfUs: number;
  /** The thread's output file (created, truncated). */
  path: string;
}

/** One share of one block: the arrays are views of SharedArrayBuffers, so nothing is copied. */
export interface RuleWorkerTask {
  id: number;
  cols: RuleStateColumns;
  rid: Float64Array;
  from: number;
  to: number;
}

/** Thread -> pool: progress of a task (`done` rows of it), its end, or the file closed after `close`. */
export type RuleWorkerReply =
  | { id: number; done: number; finished: boolean }
  | { closed: true; rows: number };

const setup = workerData as RuleWorkerSetup;
const port = parentPort!;
const fd = openSync(setup.path, "w");
// About 1 MB per write: few syscalls, small heap (the pool caps it, RULE_WORKER_HEAP).
const BATCH = 3000;
let written = 0;
const priorLine = `\t${JSON.stringify(priorRuleExplanation(setup.config))}${"\t".repeat(RULE_BLOCK_COLUMNS.length)}\n`;
const values: (number | boolean | null)[] = [];

function score(task: RuleWorkerTask): void {
  let lines: string[] = [];
  const step = Math.max(BATCH, Math.floor((task.to - task.from) / 4));
  ruleBlockRange(task.cols, setup.asOfUs, task.from, task.to, setup.config, (i, score, block) => {
    if (block === null) lines.push(`${task.rid[i]}\t${score}${priorLine}`);
    else {
      ruleBlockValues(block, values);
      let line = `${task.rid[i]}\t${score}\t`;
      // -0 (a penalty's part with no hints) written as such: String(-0) is "0", and the file's rows must be
      // the calling thread's to the bit.
      for (const v of values) line += v === null ? "\t" : Object.is(v, -0) ? "\t-0" : `\t${v}`;
      lines.push(`${line}\n`);
    }
    if (lines.length === BATCH) {
      writeAllSync(fd, lines.join(""));
      lines = [];
    }
    if ((i + 1 - task.from) % step === 0)
      port.postMessage({ id: task.id, done: i + 1 - task.from, finished: false } satisfies RuleWorkerReply);
  });
  if (lines.length > 0) writeAllSync(fd, lines.join(""));
  written += task.to - task.from;
  port.postMessage({ id: task.id, done: task.to - task.from, finished: true } satisfies RuleWorkerReply);
}

port.on("message", (m: RuleWorkerTask | { close: true }) => {
  if ("close" in m) {
    closeSync(fd);
    port.postMessage({ closed: true, rows: written } satisfies RuleWorkerReply);
    port.close();
    return;
  }
  score(m);
});

/**
 * Worker thread body for scoreRules on large snapshots: scores rows [from, to) of the shared
 * feature columns and writes "rid<TAB>score<TAB>explanation JSON" lines to its own file, which
 * DuckDB then reads in parallel. Tab-separated without quoting is safe because JSON.stringify
 * escapes every control character inside strings, so the JSON never holds a raw tab or newline;
 * String(number) round-trips exactly through DuckDB's DOUBLE parser.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { type RuleConfig, type RuleFeatureColumns, storedRuleRange } from "../models/ruleScorer.ts";

export interface RuleWorkerTask {
  cols: RuleFeatureColumns;
  rid: Float64Array;
  /** last_activity_at per row in microseconds (NaN for NULL): the stored form's read-time recency needs it. */
  lastUs: Float64Array;
  from: number;
  to: number;
  config: RuleConfig;
  path: string;
}

const task = workerData as RuleWorkerTask;
const port = parentPort!;
const fd = openSync(task.path, "w");
// About 1 MB per write: few syscalls, small peak memory.
const BATCH = 3000;
let lines: string[] = [];
const step = Math.max(BATCH, Math.floor((task.to - task.from) / 10));
try {
  storedRuleRange(task.cols, task.lastUs, task.from, task.to, task.config, (i, r) => {
    lines.push(`${task.rid[i]}\t${r.score}\t${JSON.stringify(r.explanation)}\n`);
    if (lines.length === BATCH) {
      writeSync(fd, lines.join(""));
      lines = [];
    }
    if ((i + 1 - task.from) % step === 0) port.postMessage({ done: i + 1 - task.from });
  });
  if (lines.length > 0) writeSync(fd, lines.join(""));
} finally {
  closeSync(fd);
}
port.postMessage({ done: task.to - task.from, finished: true });

/**
 * Worker thread body of the daily batch's served step (serving/servedBatch.ts): a persistent thread that scores
 * each group of whole students it is sent (serving/servedBatchGroup.ts ServedGroupScorer) and appends the
 * "pid<TAB>source<TAB>score<TAB>explanation" lines to its own file, which DuckDB reads at the end. Tab-separated
 * without quoting is safe: JSON.stringify escapes every control character, and the keys are not in the file
 * (pairs are named by pid).
 */
import { closeSync, openSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import {
  type EvidenceCounts,
  type ServedGroup,
  ServedGroupScorer,
  type ServedGroupSetup,
  ServedLineFile,
} from "./servedBatchGroup.ts";

export interface ServedWorkerSetup extends ServedGroupSetup {
  /** The thread's output file (created, truncated). */
  path: string;
}

/** Thread -> caller: a group scored (its pairs, by evidence kind), or the file closed after `close`. */
export type ServedWorkerReply =
  | { id: number; pairs: number; kinds: EvidenceCounts }
  | { closed: true; pairs: number };

const setup = workerData as ServedWorkerSetup;
const port = parentPort!;
const scorer = new ServedGroupScorer(setup);
const fd = openSync(setup.path, "w");
const file = new ServedLineFile(fd);
let written = 0;

port.on("message", (m: ServedGroup | { close: true }) => {
  if ("close" in m) {
    closeSync(fd);
    port.postMessage({ closed: true, pairs: written } satisfies ServedWorkerReply);
    port.close();
    return;
  }
  const kinds: EvidenceCounts = {};
  scorer.score(m, file, kinds);
  file.flush();
  written += m.pairs;
  port.postMessage({ id: m.id, pairs: m.pairs, kinds } satisfies ServedWorkerReply);
});

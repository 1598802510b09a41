import type { DuckStore } from "./duckdb.ts";

/**
 * What the embedded stores know about key revisions inside the DuckStore transaction that is open now
 * (DuckStore.openTransaction). A transaction's statements read one snapshot plus its own writes, so while it
 * is open these facts hold without reading the tables again; a concurrent session that writes the same rows
 * fails one of the two transactions on DuckDB's write-write conflict check. One POST /events group is one
 * transaction (serving/app.ts), so its state commit and its score write skip a read each.
 *
 * - `state`: the learner_state_rev revision of each key read by DuckStateStore.load or written by its commit.
 * - `committed`: the revision each key's state commit moved it to in this transaction. student_mastery_rev
 *   only ever holds revisions of committed states (DuckMasteryStore.write writes a state's revision), and a
 *   key's state revisions only grow, so a key committed here from r - 1 to r has a score revision below r:
 *   a score write at revision r is newer than the stored one without reading student_mastery_rev.
 */
export interface TransactionRevisions {
  state: Map<string, number>;
  committed: Map<string, number>;
}

const byStore = new WeakMap<DuckStore, { transaction: number; revs: TransactionRevisions }>();

/** The revisions known in `duck`'s open transaction (new, empty maps for a new transaction); null outside one. */
export function transactionRevisions(duck: DuckStore): TransactionRevisions | null {
  const transaction = duck.openTransaction;
  if (transaction === null) return null;
  const held = byStore.get(duck);
  if (held !== undefined && held.transaction === transaction) return held.revs;
  const revs: TransactionRevisions = { state: new Map(), committed: new Map() };
  byStore.set(duck, { transaction, revs });
  return revs;
}

/** The map key of a (student, topic). */
export const revisionKey = (studentKey: string, topicId: string): string => `${studentKey}\u0000${topicId}`;

import { configuredTimeRange, type TimeRange, timeBounds } from "../features/contractConfig.ts";
import type { ValidationIssue } from "../features/contracts.ts";
import { checkRecord } from "../features/ingest.ts";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import type { DeadLetterRow, RawEventRow, RawEventStore } from "../storage/rawEventStore.ts";
import { redactErrorMessage, storeErrorKind } from "../storage/storeErrors.ts";
import { EventLoopBudget } from "./eventLoopBudget.ts";
import {
  type ApplyResult,
  type EventUpdater,
  rowsFromEvent,
  type UpdatedKey,
  updatedKeys,
} from "./updater.ts";

/**
 * POST /events, the write-path contract (docs/runbook.md "Write-path contract"):
 *  - every item is checked alone against the contract (features/ingest.ts checkRecord: bounds,
 *    xAPI mapping, redaction); a bad item is `rejected` with every field problem and ONE
 *    dead_letter row, whatever it contains, and never fails its neighbours;
 *  - the valid items go to the ONE update path (serving/updater.ts) as one batch. The answer comes
 *    only after the updater resolved, that is once the events are in the raw zone, the state and
 *    the scores that readers use (DuckDB, or PostgreSQL + Redis). Per item: `accepted` when the
 *    updater applied at least one of its rows, `duplicate` when every row was already applied
 *    before (the updater's outcome against the state readers use is the truth, so an event
 *    whose earlier attempt failed is applied now and answered `accepted`);
 *  - when the store refuses a value (a data error, which the bounds should make unreachable), the
 *    batch is retried item by item and only the refused item is rejected. The raw append is the
 *    first write and one atomic statement, so a data error leaves nothing applied and the
 *    per-item retry still tells new events from old ones. A store that is unreachable fails the
 *    request (503): nothing is acknowledged, and the client's retry is safe (idempotent by event_id);
 *  - with --via-stream the valid items not yet applied are published to JetStream (acknowledged by
 *    the stream, durably) and answered `accepted`; a stream worker applies them.
 */

export type ItemStatus = "accepted" | "duplicate" | "rejected";

export interface IntakeItem {
  index: number;
  eventId: string | null;
  status: ItemStatus;
  errors?: ValidationIssue[];
}

export interface IntakeResult {
  accepted: number;
  duplicate: number;
  rejected: number;
  items: IntakeItem[];
  /** Students of the valid items (their cached bodies are stale). */
  studentKeys: Set<string>;
  /** (student, topic) keys whose scores moved (alerts re-check these). */
  updatedKeys: UpdatedKey[];
}

/** What POST /events writes through; createApp builds it from its stores. */
export interface IntakeDeps {
  updater: EventUpdater;
  /** Where rejected items' dead letters go (the server's DuckDB dead_letter, read by /quality). */
  deadLetters: Pick<RawEventStore, "deadLetter">;
  /**
   * A second copy of the valid items' raw rows, written after they are applied or published, when
   * the updater keeps the raw zone elsewhere (PostgreSQL): the server's DuckDB raw_events, which class
   * membership, the quality report and model features read. Not the system of record. (The server
   * copies applied rows in its group-commit step instead, serving/app.ts, and sets this for
   * --via-stream only.)
   */
  mirror: Pick<RawEventStore, "record"> | null;
  /** --via-stream: publish the valid, not yet applied items (as received) instead of applying them. */
  publish?:
    | ((events: readonly { eventId: string; type: string; record: unknown }[]) => Promise<void>)
    | undefined;
  pseudonymizer: Pseudonymizer;
  /** Plausible timestamp range (default: config/events.yaml and the environment). */
  timeRange?: TimeRange;
  source?: string;
  /** Longest synchronous slice of the batch check before the event loop gets a turn (default 5 ms). */
  sliceMs?: number;
}

interface Pending {
  index: number;
  eventId: string;
  type: string;
  record: unknown;
  rows: RawEventRow[];
}

export async function intakeEvents(
  deps: IntakeDeps,
  records: readonly unknown[],
  now: Date,
): Promise<IntakeResult> {
  const source = deps.source ?? "api";
  const nowUs = now.getTime() * 1000;
  const bounds = timeBounds(deps.timeRange ?? configuredTimeRange(), now.getTime());
  const items: IntakeItem[] = new Array(records.length);
  const dead: DeadLetterRow[] = [];
  const pending: Pending[] = [];
  // The check is synchronous (contract, xAPI mapping, HMAC): a big batch is checked in slices with
  // the event loop free in between, so /healthz and other requests never wait for the whole batch.
  const budget = new EventLoopBudget(deps.sliceMs);
  for (let index = 0; index < records.length; index++) {
    if (budget.due) await budget.yield();
    const rec = records[index];
    const c = checkRecord(rec, deps.pseudonymizer, bounds);
    if (!c.ok) {
      items[index] = { index, eventId: c.eventId, status: "rejected", errors: c.issues };
      dead.push({
        source,
        event_id: c.eventId,
        type: c.type,
        field: c.field,
        reason: c.reason,
        payload: c.payload,
        rejected_at_us: nowUs,
      });
      continue;
    }
    const rows = rowsFromEvent(c.event, deps.pseudonymizer, { source, ingestedAtUs: nowUs });
    pending.push({ index, eventId: c.event.event_id, type: c.event.type, record: rec, rows });
  }

  let moved: UpdatedKey[] = [];
  if (pending.length > 0) {
    if (deps.publish !== undefined) await publishItems(deps, pending, items);
    else moved = await applyItems(deps, pending, items, dead, nowUs, source);
    const kept = pending.filter((p) => items[p.index]!.status !== "rejected").flatMap((p) => p.rows);
    if (deps.mirror !== null && kept.length > 0) await deps.mirror.record(kept);
  }
  if (dead.length > 0) await deps.deadLetters.deadLetter(dead);

  const studentKeys = new Set<string>();
  for (const p of pending) if (p.rows[0]) studentKeys.add(p.rows[0].student_key);
  const count = (s: ItemStatus) => items.filter((i) => i.status === s).length;
  return {
    accepted: count("accepted"),
    duplicate: count("duplicate"),
    rejected: count("rejected"),
    items,
    studentKeys,
    updatedKeys: moved,
  };
}

/** Applies the items in one batch; on a data error, item by item (see the file comment). */
async function applyItems(
  deps: IntakeDeps,
  pending: readonly Pending[],
  items: IntakeItem[],
  dead: DeadLetterRow[],
  nowUs: number,
  source: string,
): Promise<UpdatedKey[]> {
  const all: ApplyResult[] = [];
  const settle = (p: Pending, results: readonly ApplyResult[]) => {
    const applied = results.some((r) => r.outcome !== "duplicate");
    items[p.index] = { index: p.index, eventId: p.eventId, status: applied ? "accepted" : "duplicate" };
    all.push(...results);
  };
  let results: ApplyResult[] | undefined;
  try {
    results = await deps.updater.apply(pending.flatMap((p) => p.rows));
  } catch (err) {
    if (storeErrorKind(err) !== "data") throw err;
  }
  if (results !== undefined) {
    // One result per row, in row order.
    let at = 0;
    for (const p of pending) {
      settle(p, results.slice(at, at + p.rows.length));
      at += p.rows.length;
    }
    return updatedKeys(all);
  }
  for (const p of pending) {
    try {
      settle(p, await deps.updater.apply(p.rows));
    } catch (err) {
      if (storeErrorKind(err) !== "data") throw err;
      const reason = `the store refused this event (${redactErrorMessage((err as Error).message ?? String(err)).slice(0, 200)}); check its values`;
      items[p.index] = {
        index: p.index,
        eventId: p.eventId,
        status: "rejected",
        errors: [{ field: "(event)", reason }],
      };
      dead.push({
        source,
        event_id: p.eventId,
        type: p.type,
        field: "(event)",
        reason,
        payload: JSON.stringify({ event_id: p.eventId, type: p.type, student_key: p.rows[0]?.student_key }),
        rejected_at_us: nowUs,
      });
    }
  }
  return updatedKeys(all);
}

/** --via-stream: items whose every row the state holds are duplicates; the rest are published. */
async function publishItems(
  deps: IntakeDeps,
  pending: readonly Pending[],
  items: IntakeItem[],
): Promise<void> {
  const applied = (await deps.updater.applied?.(pending.flatMap((p) => p.rows))) ?? new Set<string>();
  const fresh: Pending[] = [];
  const seen = new Set<string>();
  for (const p of pending) {
    const dup = applied.has(p.eventId) || seen.has(p.eventId);
    seen.add(p.eventId);
    items[p.index] = { index: p.index, eventId: p.eventId, status: dup ? "duplicate" : "accepted" };
    if (!dup) fresh.push(p);
  }
  if (fresh.length > 0)
    await deps.publish!(fresh.map((p) => ({ eventId: p.eventId, type: p.type, record: p.record })));
}

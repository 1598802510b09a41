import { listValue } from "@duckdb/node-api";
import { type LearningEvent, type ValidationIssue, validateEvent } from "../features/contracts.ts";
import { ingestEvents } from "../features/ingest.ts";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import { isXapiStatement, xapiToEvent } from "../features/xapi.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import type { RawEventRow } from "../storage/rawEventStore.ts";
import { rowsFromEvent, type UpdatedKey } from "./updater.ts";

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
  /** Students with accepted events. */
  studentKeys: Set<string>;
  /** raw_events rows of the accepted events (pseudonymized), for the updater. */
  rows: RawEventRow[];
  /**
   * raw_events rows of items answered "duplicate" because their event_id was already stored.
   * The updater gets them too (it is idempotent): an event stored by an earlier attempt whose
   * update failed (a store outage answered 503) is applied now, on the client's retry.
   */
  duplicateRows: RawEventRow[];
  /**
   * The valid items (accepted, and duplicates of stored events) as received (JSON event or xAPI
   * statement), for --via-stream publishing. Duplicates are included so a client's retry after a
   * failed publish re-publishes them; the bus (msgId) and the updater's processed set drop repeats.
   */
  events: { eventId: string; type: string; record: unknown }[];
  updatedKeys: UpdatedKey[];
}

/**
 * POST /events: stores a batch through features/ingest.ts (validation, pseudonyms, dedupe, dead
 * letters) and says, per item, accepted / duplicate (event_id already stored, or earlier in the
 * batch: the first one wins, as in ingest) / rejected with every field problem. Must run inside the
 * server's store gate: the duplicate check and the insert see the same table.
 */
export async function intakeEvents(
  store: DuckStore,
  records: readonly unknown[],
  pseudonymizer: Pseudonymizer,
  now?: Date,
): Promise<IntakeResult> {
  const mapped: (LearningEvent | null)[] = records.map((rec) => {
    let candidate: unknown = rec;
    if (isXapiStatement(rec)) {
      const m = xapiToEvent(rec);
      if (!m.ok) return null;
      candidate = m.value;
    }
    const r = validateEvent(candidate);
    return r.ok ? r.value : null;
  });
  const ids = [...new Set(mapped.filter((e) => e !== null).map((e) => e.event_id))];
  const existing = new Set<string>();
  if (ids.length > 0) {
    const rows = await store.all<{ event_id: string }>(
      "SELECT DISTINCT event_id FROM raw_events WHERE event_id IN (SELECT unnest($ids::VARCHAR[]))",
      { ids: listValue(ids) },
    );
    for (const r of rows) existing.add(r.event_id);
  }
  const report = await ingestEvents(store, records, {
    pseudonymizer,
    source: "api",
    ...(now ? { now } : {}),
  });
  const problems = new Map(report.problems.map((p) => [p.index, p]));
  const items: IntakeItem[] = [];
  const rows: RawEventRow[] = [];
  const duplicateRows: RawEventRow[] = [];
  const events: IntakeResult["events"] = [];
  const studentKeys = new Set<string>();
  const ingestedAtUs = (now ?? new Date()).getTime() * 1000;
  const seen = new Set<string>();
  let accepted = 0;
  let duplicate = 0;
  let rejected = 0;
  records.forEach((_, index) => {
    const problem = problems.get(index);
    const ev = mapped[index] ?? null;
    if (problem !== undefined || ev === null) {
      rejected++;
      items.push({
        index,
        eventId: problem?.eventId ?? null,
        status: "rejected",
        errors: problem?.issues ?? [{ field: "(event)", reason: "event is invalid" }],
      });
      return;
    }
    if (existing.has(ev.event_id) || seen.has(ev.event_id)) {
      duplicate++;
      items.push({ index, eventId: ev.event_id, status: "duplicate" });
      events.push({ eventId: ev.event_id, type: ev.type, record: records[index] });
      if (!seen.has(ev.event_id)) {
        seen.add(ev.event_id);
        duplicateRows.push(...rowsFromEvent(ev, pseudonymizer, { source: "api", ingestedAtUs }));
      }
      return;
    }
    seen.add(ev.event_id);
    accepted++;
    items.push({ index, eventId: ev.event_id, status: "accepted" });
    events.push({ eventId: ev.event_id, type: ev.type, record: records[index] });
    const evRows = rowsFromEvent(ev, pseudonymizer, { source: "api", ingestedAtUs });
    for (const r of evRows) rows.push(r);
    if (evRows[0]) studentKeys.add(evRows[0].student_key);
  });
  return { accepted, duplicate, rejected, items, rows, duplicateRows, events, studentKeys, updatedKeys: [] };
}

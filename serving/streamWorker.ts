import { configuredTimeRange, type TimeRange, timeBounds } from "../features/contractConfig.ts";
import { jsonErrorText, redactedPayload, unparsedPayload } from "../features/deadLetters.ts";
import { checkRecord, MalformedRecord } from "../features/ingest.ts";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import type { BusMessage, EventBus, Subscription } from "../storage/bus.ts";
import type { DeadLetterRow, RawEventRow, RawEventStore } from "../storage/rawEventStore.ts";
import { type ApplyResult, type EventUpdater, rowsFromEvent } from "./updater.ts";

/**
 * The stream worker: takes batches of events (one JSON event or xAPI statement per message) from
 * the bus, validates and pseudonymizes them as ingest does, hands the valid ones to the updater in
 * one call, and acknowledges them once their scores are written. Invalid messages, and messages
 * delivered more than the bus's maxDeliver times, go to dead_letter (with the reason) and are
 * terminated; a batch whose update fails is nak'ed with a backoff and comes back. Any number of
 * workers may share the bus's durable consumer (the updater serializes per key).
 */

export interface WorkerStats {
  batches: number;
  messages: number;
  applied: number;
  replayed: number;
  duplicates: number;
  deadLettered: number;
  failedBatches: number;
}

export interface StreamWorkerOptions {
  bus: EventBus;
  updater: EventUpdater;
  /** Where dead letters go (the raw zone's dead_letter table). */
  raw: RawEventStore;
  pseudonymizer: Pseudonymizer;
  /** raw_events.source of streamed events (default "stream"). */
  source?: string;
  maxBatch?: number;
  /** Batches in progress at once (default 2: the updater overlaps one's score write with the next one's state update). */
  concurrency?: number;
  nowUs?: () => number;
  onBatch?: (results: ApplyResult[], stats: WorkerStats) => void;
  onError?: (err: unknown) => void;
}

export interface RunningWorker {
  stats: WorkerStats;
  stop(): Promise<void>;
}

const decoder = new TextDecoder();

/** The message as JSON, or a MalformedRecord saying why not (its text is never kept). */
function parseJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(data));
  } catch (err) {
    return new MalformedRecord(jsonErrorText(err), data.byteLength);
  }
}

/**
 * Parses one message into rows, or the ONE dead-letter row saying why it cannot be used (the
 * contract check of features/ingest.ts checkRecord: same bounds, same redacted bounded payload).
 */
export function parseMessage(
  data: Uint8Array,
  pseudonymizer: Pseudonymizer,
  opts: { source: string; nowUs: number; timeRange?: TimeRange },
): { ok: true; rows: RawEventRow[] } | { ok: false; dead: DeadLetterRow[] } {
  const bounds = timeBounds(opts.timeRange ?? configuredTimeRange(), opts.nowUs / 1000);
  const c = checkRecord(parseJson(data), pseudonymizer, bounds);
  if (c.ok)
    return {
      ok: true,
      rows: rowsFromEvent(c.event, pseudonymizer, { source: opts.source, ingestedAtUs: opts.nowUs }),
    };
  return {
    ok: false,
    dead: [
      {
        source: opts.source,
        event_id: c.eventId,
        type: c.type,
        field: c.field,
        reason: c.reason,
        payload: c.payload,
        rejected_at_us: opts.nowUs,
      },
    ],
  };
}

/**
 * The dead letter of a message delivered more than maxDeliver times: its payload redacted and
 * bounded like any other (the raw message may hold a raw student id or an email).
 */
export function overDeliveredDeadLetter(
  m: Pick<BusMessage, "data" | "deliveryCount">,
  maxDeliver: number,
  pseudonymizer: Pseudonymizer,
  opts: { source: string; nowUs: number },
): DeadLetterRow {
  const obj = parseJson(m.data);
  const rec = (typeof obj === "object" && obj !== null ? obj : {}) as Record<string, unknown>;
  const id = typeof rec.event_id === "string" ? rec.event_id : typeof rec.id === "string" ? rec.id : null;
  return {
    source: opts.source,
    event_id: id === null ? null : Array.from(id).slice(0, 256).join(""),
    type: typeof rec.type === "string" ? rec.type.slice(0, 64) : null,
    field: "(message)",
    reason: `delivered ${m.deliveryCount} times (max ${maxDeliver}) without being processed`,
    payload:
      obj instanceof MalformedRecord ? unparsedPayload(obj.bytes) : redactedPayload(obj, pseudonymizer),
    rejected_at_us: opts.nowUs,
  };
}

export async function startWorker(opts: StreamWorkerOptions): Promise<RunningWorker> {
  const stats: WorkerStats = {
    batches: 0,
    messages: 0,
    applied: 0,
    replayed: 0,
    duplicates: 0,
    deadLettered: 0,
    failedBatches: 0,
  };
  const source = opts.source ?? "stream";
  const nowUs = opts.nowUs ?? (() => Date.now() * 1000);
  const maxDeliver = opts.bus.maxDeliver;

  const handler = async (batch: BusMessage[]) => {
    const t = nowUs();
    const good: BusMessage[] = [];
    const rows: RawEventRow[] = [];
    const dead: DeadLetterRow[] = [];
    const toTerm: BusMessage[] = [];
    for (const m of batch) {
      if (m.deliveryCount > maxDeliver) {
        dead.push(overDeliveredDeadLetter(m, maxDeliver, opts.pseudonymizer, { source, nowUs: t }));
        toTerm.push(m);
        continue;
      }
      const parsed = parseMessage(m.data, opts.pseudonymizer, { source, nowUs: t });
      if (parsed.ok) {
        good.push(m);
        rows.push(...parsed.rows);
      } else {
        dead.push(...parsed.dead);
        toTerm.push(m);
      }
    }
    stats.batches++;
    stats.messages += batch.length;
    if (dead.length > 0) {
      await opts.raw.deadLetter(dead);
      for (const m of toTerm) m.term();
      stats.deadLettered += toTerm.length;
    }
    let results: ApplyResult[];
    try {
      results = await opts.updater.apply(rows);
    } catch (err) {
      stats.failedBatches++;
      // Back off with the number of deliveries, so a struggling store is not hammered.
      for (const m of good) m.nak(Math.min(30_000, 250 * 2 ** (m.deliveryCount - 1)));
      throw err;
    }
    for (const m of good) m.ack();
    for (const r of results) {
      if (r.outcome === "applied") stats.applied++;
      else if (r.outcome === "replayed") stats.replayed++;
      else stats.duplicates++;
    }
    opts.onBatch?.(results, stats);
  };

  const sub: Subscription = await opts.bus.consume({
    maxBatch: opts.maxBatch ?? 500,
    concurrency: opts.concurrency ?? 2,
    handler,
    ...(opts.updater.stateStageIdle !== undefined
      ? { beforeTake: () => opts.updater.stateStageIdle?.() ?? Promise.resolve() }
      : {}),
    onError: (err) => opts.onError?.(err),
  });
  return { stats, stop: () => sub.stop() };
}

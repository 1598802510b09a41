import { validateEvent } from "../features/contracts.ts";
import { redact } from "../features/ingest.ts";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import { isXapiStatement, xapiToEvent } from "../features/xapi.ts";
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

/** Parses one message into rows, or the dead-letter rows saying why it cannot be used. */
export function parseMessage(
  data: Uint8Array,
  pseudonymizer: Pseudonymizer,
  opts: { source: string; nowUs: number },
): { ok: true; rows: RawEventRow[] } | { ok: false; dead: DeadLetterRow[] } {
  const text = decoder.decode(data);
  const dead = (
    field: string,
    reason: string,
    obj: unknown,
    eventId: string | null,
    type: string | null,
  ) => ({
    ok: false as const,
    dead: [
      {
        source: opts.source,
        event_id: eventId,
        type,
        field,
        reason,
        payload: JSON.stringify(redact(obj, pseudonymizer)) ?? "null",
        rejected_at_us: opts.nowUs,
      },
    ],
  });
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    return dead("(message)", `malformed JSON: ${(err as Error).message}`, text.slice(0, 1000), null, null);
  }
  let candidate = obj;
  if (isXapiStatement(obj)) {
    const mapped = xapiToEvent(obj);
    if (!mapped.ok) {
      const id = typeof (obj as { id?: unknown }).id === "string" ? (obj as { id: string }).id : null;
      return {
        ok: false,
        dead: mapped.issues.map((i) => dead(i.field, i.reason, obj, id, null).dead[0]!),
      };
    }
    candidate = mapped.value;
  }
  const r = validateEvent(candidate);
  if (!r.ok) {
    const o = (typeof candidate === "object" && candidate !== null ? candidate : {}) as Record<
      string,
      unknown
    >;
    const id = typeof o.event_id === "string" ? o.event_id : null;
    const type = typeof o.type === "string" ? o.type : null;
    return { ok: false, dead: r.issues.map((i) => dead(i.field, i.reason, obj, id, type).dead[0]!) };
  }
  return {
    ok: true,
    rows: rowsFromEvent(r.value, pseudonymizer, { source: opts.source, ingestedAtUs: opts.nowUs }),
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
        dead.push({
          source,
          event_id: null,
          type: null,
          field: "(message)",
          reason: `delivered ${m.deliveryCount} times (max ${maxDeliver}) without being processed`,
          payload: decoder.decode(m.data).slice(0, 10_000),
          rejected_at_us: t,
        });
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

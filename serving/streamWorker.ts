import { configuredTimeRange, type TimeRange, timeBounds } from "../features/contractConfig.ts";
import { jsonErrorText, redactedPayload, unparsedPayload } from "../features/deadLetters.ts";
import { checkRecord, MalformedRecord } from "../features/ingest.ts";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import type { BusMessage, EventBus, Subscription } from "../storage/bus.ts";
import type { DeadLetterRow, RawEventRow, RawEventStore } from "../storage/rawEventStore.ts";
import { type FaultKind, faultDetail, faultKind, isUnavailable } from "../storage/unavailable.ts";
import { BackendMonitor, backoffMs } from "./backendMonitor.ts";
import { type ApplyResult, type EventUpdater, rowsFromEvent } from "./updater.ts";

/**
 * The stream worker: takes batches of events (one JSON event or xAPI statement per message) from
 * the bus, validates and pseudonymizes them as ingest does, hands the valid ones to the updater in
 * one call, and acknowledges them once their scores are written. Invalid messages, and messages
 * delivered more than the bus's maxDeliver times, go to dead_letter (with the reason) and are
 * terminated. Faults (docs/runbook.md "Reliability"): while a store is unavailable the worker
 * stops pulling, keeps its in-flight messages alive and retries them once the store answers (no
 * delivery burned, nothing dead-lettered); a batch that fails for another reason is split into one
 * apply per message, so only the poison message is dead-lettered (data error) or retried with
 * backoff. Any number of workers may share the bus's durable consumer (the updater serializes per key).
 */

export interface WorkerStats {
  batches: number;
  messages: number;
  applied: number;
  replayed: number;
  duplicates: number;
  deadLettered: number;
  /** Batches (or single messages) whose apply failed for a reason other than a store outage. */
  failedBatches: number;
  /** Failed batches split into one apply per message to isolate the poison one. */
  isolatedBatches: number;
  /** Messages nak'ed with backoff after failing on their own. */
  retried: number;
  /** Store outages met (each pauses the consumer until the stores answer again). */
  outages: number;
  /** Failures of the afterApply step (the alert check); the events stayed applied and acknowledged. */
  afterApplyFailures: number;
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
  /**
   * Runs after each successful apply, before the messages are acknowledged (e.g. the at-risk alert
   * check, serving/alerts.ts alertsAfterApply). Its failure is reported to onError and changes
   * nothing else: the events are applied, acknowledged once, never retried or dead-lettered for it.
   */
  afterApply?: (results: readonly ApplyResult[]) => Promise<void>;
  onError?: (err: unknown) => void;
  /**
   * Tracks the stores' outages: the worker reports unavailable errors to it and waits on it (with
   * the bus paused) until they answer again. Default: one with no probes (plain backoff).
   */
  monitor?: BackendMonitor;
}

export interface RunningWorker {
  stats: WorkerStats;
  monitor: BackendMonitor;
  /** Stops pulling, lets the batches in progress finish (waiting out an outage too), nak's the rest. */
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

/** What the worker does with a message whose apply failed on its own (batch of one). */
export type MessageFailure = "dead-letter" | "retry";

/**
 * A message whose own apply failed (not because a store is down): a data error (the store refused
 * its values) is dead-lettered at once; anything else is retried with backoff and dead-lettered
 * once it has been delivered `maxDeliver` times.
 */
export function onMessageFailure(kind: FaultKind, deliveryCount: number, maxDeliver: number): MessageFailure {
  if (kind === "data") return "dead-letter";
  return deliveryCount >= maxDeliver ? "dead-letter" : "retry";
}

/** Redelivery delay of a failed message: 250 ms doubling per delivery, capped at 30 s. */
export function retryDelayMs(deliveryCount: number, random: () => number = Math.random): number {
  return backoffMs(deliveryCount - 1, { baseMs: 500, maxMs: 30_000 }, random);
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
    isolatedBatches: 0,
    retried: 0,
    outages: 0,
    afterApplyFailures: 0,
  };
  const source = opts.source ?? "stream";
  const nowUs = opts.nowUs ?? (() => Date.now() * 1000);
  const maxDeliver = opts.bus.maxDeliver;
  const crashLoopDeliveries = 3 * maxDeliver;
  const monitor = opts.monitor ?? new BackendMonitor({ probes: [] });
  let sub: Subscription | undefined;
  let pausedLanes = 0;

  const after = async (results: readonly ApplyResult[]) => {
    if (opts.afterApply === undefined) return;
    try {
      await opts.afterApply(results);
    } catch (err) {
      stats.afterApplyFailures++;
      opts.onError?.(new Error(`after-apply step failed (the events stay applied): ${faultDetail(err)}`));
    }
  };

  const count = (results: readonly ApplyResult[]) => {
    for (const r of results) {
      if (r.outcome === "applied") stats.applied++;
      else if (r.outcome === "replayed") stats.replayed++;
      else stats.duplicates++;
    }
  };

  /**
   * One pass over the batch's unsettled messages: parse, dead-letter the invalid ones, apply the
   * valid ones in one call; if that call fails for a reason other than a store outage, apply them
   * one message at a time so a poison message is isolated and its neighbours are kept. Throws only
   * when a store is unavailable (the caller waits for it and runs the pass again).
   */
  const pass = async (batch: readonly BusMessage[], settled: Set<BusMessage>) => {
    const t = nowUs();
    const good: { m: BusMessage; rows: RawEventRow[] }[] = [];
    const dead: DeadLetterRow[] = [];
    const toTerm: BusMessage[] = [];
    for (const m of batch) {
      if (settled.has(m)) continue;
      // Redelivered many times without ever being settled: a worker process dies on it (or is
      // killed again and again). Past the crash-loop limit it is dead-lettered without another try;
      // below it, a redelivered message is simply applied (redelivery alone is not a failure).
      if (m.deliveryCount > crashLoopDeliveries) {
        dead.push(overDeliveredDeadLetter(m, crashLoopDeliveries, opts.pseudonymizer, { source, nowUs: t }));
        toTerm.push(m);
        continue;
      }
      const parsed = parseMessage(m.data, opts.pseudonymizer, { source, nowUs: t });
      if (parsed.ok) good.push({ m, rows: parsed.rows });
      else {
        dead.push(...parsed.dead);
        toTerm.push(m);
      }
    }
    if (dead.length > 0) {
      await opts.raw.deadLetter(dead);
      for (const m of toTerm) {
        m.term();
        settled.add(m);
      }
      stats.deadLettered += toTerm.length;
    }
    if (good.length === 0) return;
    try {
      const results = await opts.updater.apply(good.flatMap((g) => g.rows));
      await after(results);
      for (const g of good) {
        g.m.ack();
        settled.add(g.m);
      }
      count(results);
      opts.onBatch?.(results, stats);
      return;
    } catch (err) {
      if (isUnavailable(err)) throw err;
      stats.failedBatches++;
      if (good.length === 1) {
        await settleFailed(good[0]!.m, err, t, settled);
        return;
      }
      stats.isolatedBatches++;
      opts.onError?.(
        new Error(
          `batch of ${good.length} messages failed (${faultDetail(err)}); applying them one at a time to isolate the cause`,
        ),
      );
    }
    for (const g of good) {
      try {
        const results = await opts.updater.apply(g.rows);
        await after(results);
        g.m.ack();
        settled.add(g.m);
        count(results);
        opts.onBatch?.(results, stats);
      } catch (err) {
        if (isUnavailable(err)) throw err;
        await settleFailed(g.m, err, t, settled);
      }
    }
  };

  /** A message that failed alone: dead-letter it with the reason, or nak it with backoff. */
  const settleFailed = async (m: BusMessage, err: unknown, t: number, settled: Set<BusMessage>) => {
    const kind = faultKind(err);
    if (onMessageFailure(kind, m.deliveryCount, maxDeliver) === "retry") {
      m.nak(retryDelayMs(m.deliveryCount));
      settled.add(m);
      stats.retried++;
      return;
    }
    const parsed = parseMessage(m.data, opts.pseudonymizer, { source, nowUs: t });
    const first = parsed.ok ? parsed.rows[0] : undefined;
    await opts.raw.deadLetter([
      {
        source,
        event_id: first?.event_id ?? null,
        type: first?.type ?? null,
        field: "(store)",
        reason: `the store refused this event (${kind === "data" ? "data error" : `failed on ${m.deliveryCount} deliveries`}): ${faultDetail(err)}`,
        payload: redactedPayload(parseJson(m.data), opts.pseudonymizer),
        rejected_at_us: t,
      },
    ]);
    m.term();
    settled.add(m);
    stats.deadLettered++;
  };

  const handler = async (batch: BusMessage[]) => {
    stats.batches++;
    stats.messages += batch.length;
    const settled = new Set<BusMessage>();
    for (let attempt = 0; ; attempt++) {
      try {
        await pass(batch, settled);
        return;
      } catch (err) {
        if (!isUnavailable(err)) throw err;
        // A store is down: stop pulling (no delivery is burned), keep this batch's messages alive,
        // wait until every store answers again, then run the pass again on what is left.
        stats.outages++;
        monitor.failed(err);
        if (pausedLanes++ === 0) await sub?.pause();
        try {
          await monitor.whenUp();
          // Nothing known down (an unnamed failure, or no probe for it): still back off.
          if (monitor.down().length === 0)
            await new Promise((r) => setTimeout(r, backoffMs(attempt, { baseMs: 200, maxMs: 5000 })));
        } finally {
          if (--pausedLanes === 0 && !stopping) await sub?.resume();
        }
      }
    }
  };

  let stopping = false;
  sub = await opts.bus.consume({
    maxBatch: opts.maxBatch ?? 500,
    concurrency: opts.concurrency ?? 2,
    handler,
    ...(opts.updater.stateStageIdle !== undefined
      ? { beforeTake: () => opts.updater.stateStageIdle?.() ?? Promise.resolve() }
      : {}),
    onError: (err) => opts.onError?.(err),
  });
  const s = sub;
  return {
    stats,
    monitor,
    stop: async () => {
      stopping = true;
      monitor.close();
      await s.stop();
    },
  };
}

import { describe, expect, it } from "vitest";
import { BackendMonitor } from "../../serving/backendMonitor.ts";
import { recompute } from "../../serving/recompute.ts";
import { openStreamStores } from "../../serving/streamStores.ts";
import { startWorker } from "../../serving/streamWorker.ts";
import { type EventUpdater, IncrementalUpdater } from "../../serving/updater.ts";
import { MemoryBus } from "../../storage/bus.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { BackendUnavailableError } from "../../storage/unavailable.ts";
import { generateStreamEvents } from "./streamEvents.ts";
import { DEFAULT_MODELS, drained, pseudonymizer, publishAll } from "./streamHarness.ts";

/**
 * The worker's fault logic on its own, in-process (MemoryBus + DuckDB :memory:): a store outage
 * pauses it without settling (or dead-lettering) anything and it resumes by itself; a poison
 * message is isolated from its batch and dead-lettered alone with its reason; retries back off.
 * Against real PostgreSQL / Redis / NATS restarts: test/chaos/chaos.int.test.ts.
 */

async function setup() {
  const duck = await DuckStore.open(":memory:");
  const stores = await openStreamStores({ dbPath: ":memory:", duck });
  const real = new IncrementalUpdater({ ...stores, models: DEFAULT_MODELS });
  return { duck, stores, real };
}

/**
 * Streams `events` generated events (no late, no duplicates) through a worker whose updater throws
 * `error()` for any batch holding `failingId`; returns the worker (stopped) once the bus is drained.
 */
async function runWithFailingEvent(opts: {
  failingId: string;
  error: () => Error;
  maxDeliver: number;
  maxBatch: number;
  events: number;
  seed: number;
  onFail?: () => void;
}) {
  const { duck, stores, real } = await setup();
  const updater: EventUpdater = {
    apply: async (rows) => {
      if (rows.some((r) => r.event_id === opts.failingId)) {
        opts.onFail?.();
        throw opts.error();
      }
      return real.apply(rows);
    },
  };
  const bus = new MemoryBus({ maxDeliver: opts.maxDeliver });
  const w = await startWorker({ bus, updater, raw: stores.raw, pseudonymizer, maxBatch: opts.maxBatch });
  const set = generateStreamEvents({
    students: 3,
    topics: 2,
    events: opts.events,
    seed: opts.seed,
    lateShare: 0,
    duplicateShare: 0,
  });
  await publishAll(bus, set.publishOrder);
  // Bounded by the work (one apply per message once the batch is split), not a fixed wall clock.
  await drained(bus, 30_000 + 5_000 * opts.events);
  await w.stop();
  await bus.close();
  return { duck, w, set };
}

describe("stream worker under faults (in-process)", () => {
  it("pauses while a store is down (nothing settled, nothing dead-lettered), resumes by itself", async () => {
    const { duck, stores, real } = await setup();
    let down = false;
    let failedCalls = 0;
    const flaky: EventUpdater = {
      apply: async (rows) => {
        if (down) {
          failedCalls++;
          throw new BackendUnavailableError("postgres", "connect ECONNREFUSED 127.0.0.1:25432");
        }
        return real.apply(rows);
      },
    };
    const events: string[] = [];
    const monitor = new BackendMonitor({
      probes: [
        {
          backend: "postgres",
          ping: async () => {
            if (down) throw new Error("connect ECONNREFUSED");
          },
        },
      ],
      backoff: { baseMs: 5, maxMs: 20 },
      onChange: (e) => events.push(`${e.state}:${e.backend}`),
    });
    const bus = new MemoryBus({ maxDeliver: 3 });
    const w = await startWorker({
      bus,
      updater: flaky,
      raw: stores.raw,
      pseudonymizer,
      maxBatch: 50,
      monitor,
    });
    const set = generateStreamEvents({ students: 5, topics: 3, events: 200, seed: 3 });
    down = true;
    await publishAll(bus, set.publishOrder);
    while (failedCalls === 0) await new Promise((r) => setTimeout(r, 5));
    // Paused: every published message is still outstanding, none was settled or redelivered.
    expect(bus.backlogCount()).toBe(set.publishOrder.length);
    expect(monitor.down()).toEqual(["postgres"]);
    down = false;
    await drained(bus, 60_000);
    await w.stop();
    expect(events).toEqual(["down:postgres", "up:postgres"]);
    expect(w.stats.deadLettered).toBe(0);
    expect(w.stats.retried).toBe(0);
    expect(w.stats.outages).toBeGreaterThanOrEqual(1);
    const dl = await duck.one<{ n: bigint }>("SELECT count(*) AS n FROM dead_letter");
    expect(Number(dl!.n)).toBe(0);
    const report = await recompute(stores, DEFAULT_MODELS);
    expect(report.tables.map((t) => [t.table, t.missing, t.extra, t.differences])).toEqual([
      ["learner_state", 0, 0, 0],
      ["student_mastery", 0, 0, 0],
    ]);
    await bus.close();
    duck.close();
  });

  it("a poison message is isolated: its batch is applied one by one, only it is dead-lettered", async () => {
    // The store refuses one event (as PostgreSQL refuses a NUL byte: SQLSTATE 22021, a data error).
    const { duck, w, set } = await runWithFailingEvent({
      failingId: "ev-0000007",
      error: () =>
        Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: "22021" }),
      maxDeliver: 5,
      maxBatch: 40,
      events: 12,
      seed: 4,
    });
    expect(w.stats.deadLettered).toBe(1);
    expect(w.stats.isolatedBatches).toBeGreaterThanOrEqual(1);
    const dl = await duck.all<{ event_id: string; field: string; reason: string; payload: string }>(
      "SELECT event_id, field, reason, payload FROM dead_letter",
    );
    expect(dl.map((r) => [r.event_id, r.field])).toEqual([["ev-0000007", "(store)"]]);
    expect(dl[0]!.reason).toBe(
      'the store refused this event (data error): 22021: invalid byte sequence for encoding "UTF8": 0x00',
    );
    // The dead letter carries the pseudonymized rows, never the raw student id.
    const raw = String(set.events.find((e) => e.event_id === "ev-0000007")!.student_id);
    expect(dl[0]!.payload).not.toContain(raw);
    expect(dl[0]!.payload).toContain(pseudonymizer.studentKey(raw));
    const stored = await duck.one<{ n: bigint }>("SELECT count(DISTINCT event_id) AS n FROM raw_events");
    expect(Number(stored!.n)).toBe(11);
    duck.close();
  });

  it("a message failing for an unknown reason is retried with backoff, then dead-lettered at the limit", async () => {
    const deliveries: number[] = [];
    const { duck, w } = await runWithFailingEvent({
      failingId: "ev-0000000",
      error: () => new TypeError("cannot read properties of undefined"),
      onFail: () => deliveries.push(Date.now()),
      maxDeliver: 3,
      maxBatch: 10,
      events: 5,
      seed: 5,
    });
    expect(w.stats.retried).toBe(2);
    expect(w.stats.deadLettered).toBe(1);
    // Three solo attempts (after the first, batched one) spaced by the backoff (>= 250 ms, >= 500 ms).
    expect(deliveries.length).toBe(4);
    expect(deliveries[2]! - deliveries[1]!).toBeGreaterThanOrEqual(250);
    expect(deliveries[3]! - deliveries[2]!).toBeGreaterThanOrEqual(500);
    const dl = await duck.all<{ reason: string }>("SELECT reason FROM dead_letter");
    expect(dl.map((r) => r.reason)).toEqual([
      "the store refused this event (failed on 3 deliveries): cannot read properties of undefined",
    ]);
    duck.close();
  });
});

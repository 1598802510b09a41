import { afterAll, describe, expect, it } from "vitest";
import { recompute } from "../../serving/recompute.ts";
import { openStreamStores, type StreamStores } from "../../serving/streamStores.ts";
import { type RunningWorker, startWorker } from "../../serving/streamWorker.ts";
import { type EventUpdater, IncrementalUpdater } from "../../serving/updater.ts";
import { type EventBus, MemoryBus, NatsBus } from "../../storage/bus.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { generateStreamEvents } from "./streamEvents.ts";
import {
  DEFAULT_MODELS,
  drained,
  NATS_URL,
  pseudonymizer,
  publishAll,
  runId,
  serviceStores,
} from "./streamHarness.ts";

const encoder = new TextEncoder();

async function natsBus(id: string, opts: { ackWaitMs?: number; maxDeliver?: number } = {}): Promise<NatsBus> {
  return NatsBus.open({
    url: NATS_URL,
    stream: id,
    subjectPrefix: `test.${id}`,
    durable: "workers",
    ackWaitMs: opts.ackWaitMs ?? 5000,
    ...(opts.maxDeliver !== undefined ? { maxDeliver: opts.maxDeliver } : {}),
  });
}

function worker(bus: EventBus, stores: StreamStores, updater?: EventUpdater): Promise<RunningWorker> {
  return startWorker({
    bus,
    updater: updater ?? new IncrementalUpdater({ ...stores, models: DEFAULT_MODELS }),
    raw: stores.raw,
    pseudonymizer,
    maxBatch: 200,
  });
}

const summary = (r: Awaited<ReturnType<typeof recompute>>) =>
  r.tables.map((t) => ({
    table: t.table,
    missing: t.missing,
    extra: t.extra,
    differences: t.differences,
    max: t.maxAbsDiff,
  }));
const ZERO = [
  { table: "learner_state", missing: 0, extra: 0, differences: 0, max: 0 },
  { table: "student_mastery", missing: 0, extra: 0, differences: 0, max: 0 },
];

describe("stream (in-process bus, DuckDB)", () => {
  it("a worker on the in-process bus ends equal to the recompute", async () => {
    const duck = await DuckStore.open(":memory:");
    const stores = await openStreamStores({ dbPath: ":memory:", duck });
    const bus = new MemoryBus();
    const w = await worker(bus, stores);
    const set = generateStreamEvents({ students: 10, topics: 4, events: 800, seed: 5 });
    await publishAll(bus, set.publishOrder);
    await drained(bus);
    await w.stop();
    const report = await recompute(stores, DEFAULT_MODELS);
    expect(summary(report)).toEqual(ZERO);
    expect(report.keys).toBe(40);
    expect(w.stats.messages).toBe(set.publishOrder.length);
    await bus.close();
    await stores.close();
    duck.close();
  });
});

describe("stream (NATS JetStream -> worker -> Redis + PostgreSQL)", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  async function setup(label: string, busOpts: { ackWaitMs?: number; maxDeliver?: number } = {}) {
    const id = runId(label);
    const svc = await serviceStores(id);
    cleanups.push(svc.drop);
    const bus = await natsBus(id, busOpts);
    cleanups.push(async () => {
      await bus.destroy();
      await bus.close();
    });
    return { id, svc, bus };
  }

  it("streamed state equals the recompute, with late and duplicate events, and invalid ones dead-lettered", async () => {
    const { svc, bus } = await setup("st");
    const w = await worker(bus, svc.stores);
    const set = generateStreamEvents({ students: 40, topics: 6, events: 6000, seed: 21 });
    await publishAll(bus, set.publishOrder);
    await bus.publish(
      bus.subjectFor("quiz_attempt"),
      encoder.encode('{"event_id": "bad-1", "type": "quiz_attempt"'),
    );
    await bus.publish(
      bus.subjectFor("quiz_attempt"),
      encoder.encode(
        JSON.stringify({
          ...set.events[0],
          event_id: "bad-2",
          type: "quiz_attempt",
          topic_id: "t",
          is_correct: "yes",
        }),
      ),
    );
    await drained(bus);
    await w.stop();
    const report = await recompute(svc.stores, DEFAULT_MODELS);
    expect(summary(report)).toEqual(ZERO);
    expect(report.tables[0]!.compared).toBe(240);
    expect(w.stats.duplicates).toBeGreaterThanOrEqual(set.publishOrder.length - set.events.length);
    expect(w.stats.replayed).toBeGreaterThan(240); // first events of keys plus late arrivals
    expect(w.stats.deadLettered).toBe(2);
  });

  it("redelivered events have no effect: a worker that fails after committing gets every batch again", async () => {
    const { svc, bus } = await setup("rd", { ackWaitMs: 2000 });
    const real = new IncrementalUpdater({ ...svc.stores, models: DEFAULT_MODELS });
    let calls = 0;
    // Applies the batch (state and scores are written), then fails every other time (for the first 20
    // batches, so the nak backoff stays short), as a worker
    // would that dies before acknowledging: those messages are nak'ed and delivered again.
    const flaky: EventUpdater = {
      apply: async (rows) => {
        const out = await real.apply(rows);
        if (calls++ % 2 === 0 && calls < 20) throw new Error("injected failure after commit");
        return out;
      },
    };
    const w = await worker(bus, svc.stores, flaky);
    const set = generateStreamEvents({ students: 15, topics: 4, events: 2000, seed: 8 });
    await publishAll(bus, set.publishOrder);
    await drained(bus);
    await w.stop();
    expect(w.stats.failedBatches).toBeGreaterThan(0);
    expect(w.stats.duplicates).toBeGreaterThan(0);
    const report = await recompute(svc.stores, DEFAULT_MODELS);
    expect(summary(report)).toEqual(ZERO);
    // No extra history rows either: one per state revision and source.
    const pg = (await import("../../storage/postgres.ts")).PgStore;
    const conn = await pg.open(svc.config.pgUrl!, { schema: svc.config.pgSchema! });
    const h = await conn.one<{ n: string; revs: string }>(
      "SELECT (SELECT count(*) FROM student_mastery_history) AS n, (SELECT sum(rev) FROM student_mastery_rev) AS revs",
    );
    await conn.close();
    expect(Number(h!.n)).toBeLessThanOrEqual(2 * Number(h!.revs));
  });

  it("a message that keeps failing is dead-lettered after maxDeliver deliveries", async () => {
    const { svc, bus } = await setup("dl", { ackWaitMs: 1000, maxDeliver: 2 });
    const real = new IncrementalUpdater({ ...svc.stores, models: DEFAULT_MODELS });
    const poison: EventUpdater = {
      apply: async (rows) => {
        if (rows.some((r) => r.event_id === "poison")) throw new Error("cannot process");
        return real.apply(rows);
      },
    };
    const w = await worker(bus, svc.stores, poison);
    const set = generateStreamEvents({
      students: 3,
      topics: 2,
      events: 50,
      seed: 2,
      lateShare: 0,
      duplicateShare: 0,
    });
    await publishAll(bus, set.events);
    await drained(bus);
    await bus.publish(
      bus.subjectFor("quiz_attempt"),
      encoder.encode(JSON.stringify({ ...set.events[0], event_id: "poison" })),
    );
    await drained(bus, 30_000);
    await w.stop();
    expect(w.stats.deadLettered).toBe(1);
    const pg = (await import("../../storage/postgres.ts")).PgStore;
    const conn = await pg.open(svc.config.pgUrl!, { schema: svc.config.pgSchema! });
    const rows = await conn.all<{ reason: string }>("SELECT reason FROM dead_letter");
    await conn.close();
    // Retried with backoff once, then dead-lettered alone on its last allowed delivery, with the reason.
    expect(rows.map((r) => r.reason)).toEqual([
      "the store refused this event (failed on 2 deliveries): cannot process",
    ]);
  });

  it("two workers sharing the durable consumer end in the same state as one worker", async () => {
    const set = generateStreamEvents({ students: 6, topics: 3, events: 4000, seed: 13 });
    const one = await setup("one");
    const two = await setup("two");
    const w1 = await worker(one.bus, one.svc.stores);
    // Two workers = two connections, two updaters and two store clients, as two processes would have.
    const second = await serviceStores(two.id);
    cleanups.push(() => second.stores.close());
    const secondBus = await natsBus(two.id);
    cleanups.push(() => secondBus.close());
    const w2a = await worker(two.bus, two.svc.stores);
    const w2b = await worker(secondBus, second.stores);
    await Promise.all([publishAll(one.bus, set.publishOrder), publishAll(two.bus, set.publishOrder)]);
    await drained(one.bus);
    await drained(two.bus);
    await Promise.all([w1.stop(), w2a.stop(), w2b.stop()]);
    // Both workers of the pair did work (few keys, so they contended for the same keys).
    expect(w2a.stats.messages).toBeGreaterThan(0);
    expect(w2b.stats.messages).toBeGreaterThan(0);
    const sorted = async (s: StreamStores) =>
      (await s.state.all())
        .map((k) => ({ key: `${k.studentKey}/${k.topicId}`, state: k.state }))
        .sort((a, b) => (a.key < b.key ? -1 : 1));
    const a = await sorted(one.svc.stores);
    const b = await sorted(two.svc.stores);
    expect(a.length).toBe(18);
    expect(b).toEqual(a);
    expect(summary(await recompute(two.svc.stores, DEFAULT_MODELS))).toEqual(ZERO);
  });
});

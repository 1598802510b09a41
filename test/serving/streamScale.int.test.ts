/**
 * Stream scale-out safety: three workers, each with its own NATS connection, updater and store clients
 * (as three `mastery worker` processes have), share one durable consumer and apply events of the SAME
 * few (student, topic) keys at the same time. The updater's compare-and-set on the key's revision
 * (storage/stateStore.ts) and the revision-guarded student_mastery write (storage/masteryStore.ts)
 * must make the result equal to the full replay, whatever the interleaving. Real NATS JetStream, Redis
 * and PostgreSQL; own stream / schema / prefix ("scale_*").
 */
import { afterAll, describe, expect, it } from "vitest";
import { recompute } from "../../serving/recompute.ts";
import { openStreamStores, type StreamStores } from "../../serving/streamStores.ts";
import { type RunningWorker, startWorker } from "../../serving/streamWorker.ts";
import { IncrementalUpdater } from "../../serving/updater.ts";
import { NatsBus } from "../../storage/bus.ts";
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

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const bus = (id: string) =>
  NatsBus.open({
    url: NATS_URL,
    stream: id,
    subjectPrefix: `test.${id}`,
    durable: "workers",
    ackWaitMs: 10_000,
  });

describe("stream scale-out: several workers on one durable consumer, same keys", () => {
  it("three workers contending for 4 keys (late and duplicate events) end equal to the recompute", {
    timeout: 180_000,
  }, async () => {
    const id = runId("scale_contend");
    const svc = await serviceStores(id);
    cleanups.push(svc.drop);
    const set = generateStreamEvents({
      students: 2,
      topics: 2,
      events: 3000,
      seed: 15,
      lateShare: 0.05,
      duplicateShare: 0.02,
    });

    const running: { worker: RunningWorker; updater: IncrementalUpdater; stores: StreamStores }[] = [];
    let publisher: NatsBus | undefined;
    for (let k = 0; k < 3; k++) {
      const b = await bus(id);
      cleanups.push(async () => {
        if (k === 0) await b.destroy();
        await b.close();
      });
      publisher ??= b;
      const stores = k === 0 ? svc.stores : await openStreamStores(svc.config);
      if (k > 0) cleanups.push(() => stores.close());
      const updater = new IncrementalUpdater({ ...stores, models: DEFAULT_MODELS });
      // Small batches, so every worker holds some of the stream at any time.
      const worker = await startWorker({ bus: b, updater, raw: stores.raw, pseudonymizer, maxBatch: 25 });
      running.push({ worker, updater, stores });
    }
    await publishAll(publisher!, set.publishOrder);
    await drained(publisher!, 120_000);
    await Promise.all(running.map((r) => r.worker.stop()));

    // Every worker took part, and they did collide on keys (each collision is a reload + retry).
    for (const r of running) expect(r.worker.stats.messages).toBeGreaterThan(0);
    const conflicts = running.reduce((a, r) => a + r.updater.stats.conflicts, 0);
    expect(conflicts, "no key was moved by one worker while another was updating it").toBeGreaterThan(0);
    expect(running.reduce((a, r) => a + r.worker.stats.messages, 0)).toBeGreaterThanOrEqual(
      set.publishOrder.length,
    );
    expect(running.reduce((a, r) => a + r.worker.stats.deadLettered, 0)).toBe(0);

    // One raw row per (event, topic): an assignment counts once per topic it names.
    const rows = set.events.reduce(
      (a, e) => a + (Array.isArray(e.topic_ids) ? new Set(e.topic_ids as string[]).size : 1),
      0,
    );
    const rep = await recompute(svc.stores, DEFAULT_MODELS);
    expect(rep.keys).toBe(4);
    expect(rep.events).toBe(rows);
    expect(
      rep.tables.map((t) => ({ table: t.table, missing: t.missing, extra: t.extra, diff: t.differences })),
    ).toEqual([
      { table: "learner_state", missing: 0, extra: 0, diff: 0 },
      { table: "student_mastery", missing: 0, extra: 0, diff: 0 },
    ]);
    // Each key's state holds every one of its events exactly once.
    const states = await svc.stores.state.all();
    expect(states.reduce((a, s) => a + s.state.eventN, 0)).toBe(rows);
  });
});

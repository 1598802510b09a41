import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { formatReport, RULE_RELATIVE_TOLERANCE, recompute } from "../../serving/recompute.ts";
import { streamModels } from "../../serving/updater.ts";
import { NatsBus } from "../../storage/bus.ts";
import { generateStreamEvents } from "./streamEvents.ts";
import {
  dropServices,
  NATS_URL,
  PG_URL,
  publishAll,
  REDIS_URL,
  runId,
  serviceStores,
} from "./streamHarness.ts";

/**
 * The fault test: 100k+ events through NATS while the worker PROCESS is killed with SIGKILL again
 * and again (no shutdown hook runs: batches die half-applied, between the raw insert, the Redis
 * commit, the PostgreSQL write and the acks). After a last clean run drains the stream, the state
 * must equal `mastery recompute` exactly.
 */

const MASTERY = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "mastery.js");
const KILLS = 6;

describe("fault: kill -9 the worker during a 100k-event replay", () => {
  const id = runId("fault");
  let bus: NatsBus | undefined;
  let child: ChildProcess | undefined;
  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) child.kill("SIGKILL");
    await bus?.destroy().catch(() => undefined);
    await bus?.close().catch(() => undefined);
    await dropServices(id);
  });

  // No wall-clock budget for the whole run: the guards below fail it when the work stops moving
  // (a loaded machine is slow, not wrong). The vitest timeout is only a last resort.
  it("ends equal to the recompute after repeated SIGKILLs", { timeout: 1_800_000 }, async () => {
    const set = generateStreamEvents({ students: 600, topics: 8, events: 100_000, seed: 99 });
    bus = await NatsBus.open({
      url: NATS_URL,
      stream: id,
      subjectPrefix: `test.${id}`,
      durable: "workers",
      ackWaitMs: 5000,
      maxDeliver: 50,
    });
    const b = bus;
    await publishAll(b, set.publishOrder, 1000);
    expect((await b.backlog()).pending).toBe(set.publishOrder.length);

    const env = {
      ...process.env,
      MASTERY_NATS_URL: NATS_URL,
      MASTERY_PG_URL: PG_URL,
      MASTERY_PG_SCHEMA: id.toLowerCase(),
      MASTERY_REDIS_URL: REDIS_URL,
      MASTERY_REDIS_PREFIX: id,
      MASTERY_PSEUDONYM_KEY: "fault-test-key-0123456789abcdef",
    };
    const args = ["worker", "--stream", id, "--subject-prefix", `test.${id}`, "--durable", "workers"];
    const start = (extra: string[] = []) => {
      const c = spawn(
        process.execPath,
        [MASTERY, ...args, "--ack-wait", "5000", "--max-deliver", "50", ...extra],
        {
          env,
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      let err = "";
      c.stderr?.on("data", (d: Buffer) => {
        err = (err + d.toString()).slice(-4000);
      });
      const exited = new Promise<number | null>((r) => c.on("exit", (code) => r(code)));
      return { c, exited, err: () => err };
    };
    const left = async () => {
      const x = await b.backlog();
      return x.pending + x.ackPending;
    };

    let kills = 0;
    const progressAtKill: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const before = (await b.backlog()).pending;
      const w = start();
      child = w.c;
      // Wait until this incarnation has taken work (pending dropped), then let it run 0.3-1.3 s.
      const t0 = Date.now();
      await untilStalled(async () => (await b.backlog()).pending < before, 60_000, "the worker to take work");
      await sleep(300 + ((k * 397) % 1000));
      w.c.kill("SIGKILL");
      await w.exited;
      kills++;
      progressAtKill.push(set.publishOrder.length - (await left()));
      if (process.env.MASTERY_TEST_VERBOSE === "1")
        process.stderr.write(`kill ${kills} at ${Date.now() - t0} ms: ${progressAtKill.at(-1)} settled\n`);
      if ((await left()) === 0) break;
    }
    expect(kills).toBeGreaterThanOrEqual(5);
    // The kills landed mid-stream: work was still outstanding after the fifth.
    expect(progressAtKill[4]).toBeLessThan(set.publishOrder.length);

    // A last, clean run drains what is left (redeliveries of the killed batches included).
    const last = start(["--idle-exit", "2"]);
    child = last.c;
    // Fails only if the backlog stops shrinking for 60 s (deadline scales with the work left).
    const watch = watchProgress(left, 60_000);
    const code = await Promise.race([last.exited, watch.stalled]);
    watch.stop();
    expect(code, last.err()).toBe(0);
    expect(await left()).toBe(0);

    const svc = await serviceStores(id);
    try {
      // The worker ran with the CLI's stream models (rule state included); the recompute must too.
      const report = await recompute(svc.stores, streamModels({}));
      expect(
        report.tables.map((t) => [t.table, t.missing, t.extra, t.differences]),
        formatReport(report),
      ).toEqual([
        ["learner_state", 0, 0, 0],
        ["student_mastery", 0, 0, 0],
      ]);
      // Rule rows come from merged decayed sums, equal within the recompute's tolerance; every
      // other row is equal bit for bit.
      for (const t of report.tables)
        expect(t.maxAbsDiff, t.table).toBeLessThanOrEqual(RULE_RELATIVE_TOLERANCE);
      expect(report.keys).toBe(600 * 8);
      // Every (event, topic) row is in the raw zone exactly once.
      const distinctRows = set.events.reduce(
        (n, e) => n + (e.type === "assignment" ? (e.topic_ids as string[]).length : 1),
        0,
      );
      expect(report.events).toBe(distinctRows);
    } finally {
      await svc.stores.close();
    }
  });
});

/** Polls `done` until true; fails after `ms` without it becoming true. */
async function untilStalled(done: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await done())) {
    if (Date.now() - t0 > ms) throw new Error(`waited ${ms} ms for ${what}`);
    await sleep(50);
  }
}

/**
 * Rejects `stalled` when `remaining()` has not gone down for `ms` (the worker made no progress);
 * as long as it keeps draining, there is no deadline.
 */
function watchProgress(remaining: () => Promise<number>, ms: number) {
  let stop = false;
  const stalled = (async (): Promise<never> => {
    let last = Number.POSITIVE_INFINITY;
    let lastMove = Date.now();
    for (;;) {
      await sleep(500);
      if (stop) return new Promise<never>(() => {});
      const r = await remaining().catch(() => last);
      if (r < last) {
        last = r;
        lastMove = Date.now();
      } else if (Date.now() - lastMove > ms) throw new Error(`no progress for ${ms} ms (${r} messages left)`);
    }
  })();
  return {
    stalled,
    stop: () => {
      stop = true;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

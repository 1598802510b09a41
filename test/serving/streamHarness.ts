import { randomBytes } from "node:crypto";
import { validateEvent } from "../../features/contracts.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import type { BktEloModels } from "../../serving/learnerState.ts";
import { openServingBackends, type ServingBackends } from "../../serving/servingBackends.ts";
import { openStreamStores, type StreamStoreConfig, type StreamStores } from "../../serving/streamStores.ts";
import { type ApplyResult, IncrementalUpdater, rowsFromEvent } from "../../serving/updater.ts";
import { type EventBus, type MemoryBus, NatsBus } from "../../storage/bus.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { PgStore } from "../../storage/postgres.ts";
import type { RawEventRow } from "../../storage/rawEventStore.ts";
import { RedisStateStore } from "../../storage/stateStore.ts";

/** Services of this machine (CI starts them); the tests use them for real. */
export const PG_URL = process.env.MASTERY_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.MASTERY_REDIS_URL ?? "redis://127.0.0.1:6379";
export const NATS_URL = process.env.MASTERY_NATS_URL ?? "nats://127.0.0.1:4222";

export const DEFAULT_MODELS: BktEloModels = {
  bkt: undefined,
  bktVersion: "default",
  elo: undefined,
  eloVersion: "default",
};

export const pseudonymizer = new Pseudonymizer("stream-test-key-0123456789");

/** A name unique to this test run (PG schema, Redis prefix, NATS stream and subjects). */
export function runId(label: string): string {
  return `${label}_${process.pid}_${randomBytes(4).toString("hex")}`;
}

/** Stores on real PostgreSQL (fresh schema) and Redis (fresh prefix); `drop` removes both. */
export async function serviceStores(
  id: string,
): Promise<{ stores: StreamStores; config: StreamStoreConfig; drop(): Promise<void> }> {
  const config: StreamStoreConfig = {
    dbPath: ":memory:",
    pgUrl: PG_URL,
    pgSchema: id.toLowerCase(),
    redisUrl: REDIS_URL,
    redisPrefix: id,
  };
  const stores = await openStreamStores(config);
  return {
    stores,
    config,
    drop: async () => {
      await stores.close();
      await dropServices(id);
    },
  };
}

export async function dropServices(id: string): Promise<void> {
  const pg = await PgStore.open(PG_URL);
  await pg.run(`DROP SCHEMA IF EXISTS ${id.toLowerCase()} CASCADE`);
  await pg.close();
  const r = await RedisStateStore.open(REDIS_URL, id);
  await r.clear();
  await r.close();
}

const encoder = new TextEncoder();

export async function publishAll(bus: EventBus, events: readonly Record<string, unknown>[], window = 500) {
  for (let i = 0; i < events.length; i += window) {
    await Promise.all(
      events
        .slice(i, i + window)
        .map((e) => bus.publish(bus.subjectFor(String(e.type)), encoder.encode(JSON.stringify(e)))),
    );
  }
}

/** Waits until the bus has nothing pending or unacknowledged (bounded: fails after `timeoutMs`). */
export async function drained(bus: EventBus, timeoutMs = 60_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    const left =
      bus instanceof NatsBus
        ? await bus.backlog().then((b) => b.pending + b.ackPending)
        : (bus as MemoryBus).backlogCount();
    if (left === 0) return;
    if (Date.now() - start > timeoutMs)
      throw new Error(`bus not drained after ${timeoutMs} ms (${left} left)`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * `mastery serve`'s backends on real PostgreSQL + Redis (+ NATS with viaStream) over an in-memory DuckDB,
 * with their own schema / prefix / stream (from `label`); `cleanups` gets what drops and closes them.
 */
export async function pgServingBackends(
  label: string,
  cleanups: (() => Promise<void>)[],
  opts: { viaStream?: boolean; durable?: string; beforeOpen?: (schema: string) => Promise<void> } = {},
): Promise<{ id: string; schema: string; duck: DuckStore; backends: ServingBackends }> {
  const id = runId(label);
  const schema = id.toLowerCase();
  cleanups.push(() => dropServices(id));
  await opts.beforeOpen?.(schema);
  const duck = await DuckStore.open(":memory:");
  const backends = await openServingBackends({
    duck,
    stores: { dbPath: ":memory:", pgUrl: PG_URL, pgSchema: schema, redisUrl: REDIS_URL, redisPrefix: id },
    models: DEFAULT_MODELS,
    viaStream: opts.viaStream
      ? { natsUrl: NATS_URL, stream: id, subjectPrefix: `test.${id}`, durable: opts.durable ?? "workers" }
      : undefined,
    cacheTtlMs: 0,
  });
  cleanups.push(async () => {
    if (backends.bus instanceof NatsBus) await backends.bus.destroy();
    await backends.close();
    duck.close();
  });
  return { id, schema, duck, backends };
}

/** The raw rows of fixture events (validated; a fixture that fails validation is a bug in the test). */
export function fixtureRows(events: readonly Record<string, unknown>[], ingestedAtUs: number): RawEventRow[] {
  return events.flatMap((e) => {
    const v = validateEvent(e);
    if (!v.ok) throw new Error(`fixture event invalid: ${JSON.stringify(v.issues)}`);
    return rowsFromEvent(v.value, pseudonymizer, { source: "test", ingestedAtUs });
  });
}

/** Applies `events` through `updater` in batches of the given sizes (cycled), as a consumer would. */
export async function applyFixtureInBatches(
  updater: IncrementalUpdater,
  events: readonly Record<string, unknown>[],
  sizes: readonly number[],
  ingestedAtUs: number,
): Promise<ApplyResult[]> {
  const out: ApplyResult[] = [];
  let i = 0;
  let k = 0;
  while (i < events.length) {
    const n = sizes[k++ % sizes.length]!;
    out.push(...(await updater.apply(fixtureRows(events.slice(i, i + n), ingestedAtUs))));
    i += n;
  }
  return out;
}

/**
 * A fixture clock at `nowUs` for the updater tests: rows ingested at `nowUs`, updaters whose writes are
 * stamped 1 ms apart from it (with `models` unless others are given), and batches applied as a consumer would.
 */
export function fixtureClock(nowUs: number, models: BktEloModels = DEFAULT_MODELS) {
  return {
    rows: (events: readonly Record<string, unknown>[]) => fixtureRows(events, nowUs),
    newUpdater(stores: StreamStores, withModels: BktEloModels = models): IncrementalUpdater {
      let t = nowUs;
      return new IncrementalUpdater({ ...stores, models: withModels, nowUs: () => (t += 1000) });
    },
    applyInBatches: (
      updater: IncrementalUpdater,
      events: readonly Record<string, unknown>[],
      sizes: readonly number[],
    ) => applyFixtureInBatches(updater, events, sizes, nowUs),
  };
}

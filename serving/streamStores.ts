import { type AlertStore, DuckAlertStore, PgAlertStore } from "../storage/alertStore.ts";
import { type EventBus, MemoryBus, NatsBus, type NatsBusOptions } from "../storage/bus.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { DuckMasteryStore, type MasteryStore, PgMasteryStore } from "../storage/masteryStore.ts";
import { PgStore } from "../storage/postgres.ts";
import { DuckRawEventStore, PgRawEventStore, type RawEventStore } from "../storage/rawEventStore.ts";
import { DuckStateStore, RedisStateStore, type StateStore } from "../storage/stateStore.ts";
import type { BackendName } from "../storage/unavailable.ts";

/** A cheap round trip to one backend; throws when it does not answer. */
export interface BackendProbe {
  backend: BackendName;
  ping(): Promise<void>;
  /** A probe slower than this counts as failed (ms; default: the monitor's probeTimeoutMs, 1000). */
  timeoutMs?: number;
}

/**
 * Which stores the update path uses, from the environment: PostgreSQL for the raw zone and
 * student_mastery when MASTERY_PG_URL is set, Redis for learner_state when MASTERY_REDIS_URL is set,
 * else the embedded DuckDB file. Several worker processes need PostgreSQL and Redis (a DuckDB file
 * is held by one process).
 */
export interface StreamStoreConfig {
  dbPath: string;
  /**
   * An already open DuckDB store to use instead of opening dbPath (a process can hold a DuckDB file
   * only once; the API server passes its own). Not closed by StreamStores.close.
   */
  duck?: DuckStore | undefined;
  pgUrl?: string | undefined;
  /** PostgreSQL schema (tests use a fresh one per run). */
  pgSchema?: string | undefined;
  /** PostgreSQL pool size (default: MASTERY_PG_POOL_MAX or 10; `mastery serve` passes serving.yaml pg_pool_max). */
  pgPoolMax?: number | undefined;
  redisUrl?: string | undefined;
  /** Prefix of every Redis key (tests use a fresh one per run). */
  redisPrefix?: string | undefined;
}

export interface StreamStores {
  raw: RawEventStore;
  state: StateStore;
  mastery: MasteryStore;
  /** Where each store lives, for logs. */
  describe: string;
  /** The mastery store has its own connection (see IncrementalUpdaterOptions.pipelineMastery). */
  pipelineMastery: boolean;
  /** The PostgreSQL pool the raw zone and student_mastery use (null on the embedded file). */
  pg: PgStore | null;
  /** One cheap round trip per service these stores use (/readyz and the worker's pause probe). */
  probes: BackendProbe[];
  /** At-risk alert state, next to student_mastery (PostgreSQL or the DuckDB file). */
  alerts: AlertStore;
  close(): Promise<void>;
}

export function streamStoreConfigFromEnv(
  dbPath: string,
  env: NodeJS.ProcessEnv = process.env,
): StreamStoreConfig {
  const nonEmpty = (v: string | undefined) => (v === undefined || v === "" ? undefined : v);
  return {
    dbPath,
    pgUrl: nonEmpty(env.MASTERY_PG_URL),
    pgSchema: nonEmpty(env.MASTERY_PG_SCHEMA),
    redisUrl: nonEmpty(env.MASTERY_REDIS_URL),
    redisPrefix: nonEmpty(env.MASTERY_REDIS_PREFIX),
  };
}

export async function openStreamStores(cfg: StreamStoreConfig): Promise<StreamStores> {
  const closers: (() => Promise<void>)[] = [];
  const where: string[] = [];
  let duck: DuckStore | undefined = cfg.duck;
  const openDuck = async () => {
    if (duck === undefined) {
      const d = await DuckStore.open(cfg.dbPath);
      duck = d;
      closers.push(async () => d.close());
    }
    return duck;
  };
  let pg: PgStore | null = null;
  const probes: BackendProbe[] = [];
  try {
    let raw: RawEventStore;
    let mastery: MasteryStore;
    let alerts: AlertStore;
    if (cfg.pgUrl !== undefined) {
      const pgOpts = {
        ...(cfg.pgSchema !== undefined ? { schema: cfg.pgSchema } : {}),
        ...(cfg.pgPoolMax !== undefined ? { poolMax: cfg.pgPoolMax } : {}),
      };
      // One pool: a transaction holds its own pooled client, so reads never run inside a writer's
      // transaction, and the mastery write can overlap the next batch's raw insert.
      const p = await PgStore.open(cfg.pgUrl, pgOpts);
      pg = p;
      closers.push(() => p.close());
      // On a connection of its own: a pool busy with requests is not a down server (under load the
      // pooled SELECT 1 waited over 1 s and the server answered 503 to everything).
      probes.push({ backend: "postgres", ping: () => p.ping() });
      raw = await PgRawEventStore.open(p);
      mastery = await PgMasteryStore.open(p);
      alerts = await PgAlertStore.open(p);
      where.push(
        `raw_events + student_mastery: PostgreSQL${cfg.pgSchema !== undefined ? ` (schema ${cfg.pgSchema})` : ""}`,
      );
    } else {
      const d = await openDuck();
      raw = await DuckRawEventStore.open(d);
      mastery = await DuckMasteryStore.open(d);
      alerts = await DuckAlertStore.open(d);
      where.push(`raw_events + student_mastery: ${cfg.dbPath}`);
    }
    let state: StateStore;
    if (cfg.redisUrl !== undefined) {
      const r = await RedisStateStore.open(cfg.redisUrl, cfg.redisPrefix);
      closers.push(() => r.close());
      probes.push({ backend: "redis", ping: () => r.ping() });
      state = r;
      where.push(`learner_state: Redis (prefix ${r.prefix})`);
    } else {
      state = await DuckStateStore.open(await openDuck());
      where.push(`learner_state: ${cfg.dbPath}`);
    }
    return {
      raw,
      state,
      mastery,
      describe: where.join("; "),
      pipelineMastery: cfg.pgUrl !== undefined,
      pg,
      probes,
      alerts,
      close: async () => {
        for (const c of closers.reverse()) await c();
      },
    };
  } catch (err) {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    throw err;
  }
}

export interface BusConfig {
  natsUrl?: string | undefined;
  stream?: string | undefined;
  subjectPrefix?: string | undefined;
  durable?: string | undefined;
  ackWaitMs?: number | undefined;
  maxDeliver?: number | undefined;
  onStatus?: NatsBusOptions["onStatus"];
}

export function busConfigFromEnv(env: NodeJS.ProcessEnv = process.env): BusConfig {
  const v = (name: string) => (env[name] === undefined || env[name] === "" ? undefined : env[name]);
  // Stream and subject prefix: deployments and benches sharing one NATS keep their own (the worker's
  // --stream / --subject-prefix must match).
  return {
    natsUrl: v("MASTERY_NATS_URL"),
    ...(v("MASTERY_NATS_STREAM") !== undefined ? { stream: v("MASTERY_NATS_STREAM") } : {}),
    ...(v("MASTERY_NATS_SUBJECT_PREFIX") !== undefined
      ? { subjectPrefix: v("MASTERY_NATS_SUBJECT_PREFIX") }
      : {}),
  };
}

/** NATS JetStream when a URL is configured, else the in-process bus. */
export async function openBus(cfg: BusConfig): Promise<EventBus> {
  if (cfg.natsUrl === undefined) {
    return new MemoryBus({
      ...(cfg.maxDeliver !== undefined ? { maxDeliver: cfg.maxDeliver } : {}),
      ...(cfg.subjectPrefix !== undefined ? { subjectPrefix: cfg.subjectPrefix } : {}),
    });
  }
  const opts: NatsBusOptions = { url: cfg.natsUrl };
  if (cfg.stream !== undefined) opts.stream = cfg.stream;
  if (cfg.subjectPrefix !== undefined) opts.subjectPrefix = cfg.subjectPrefix;
  if (cfg.durable !== undefined) opts.durable = cfg.durable;
  if (cfg.ackWaitMs !== undefined) opts.ackWaitMs = cfg.ackWaitMs;
  if (cfg.maxDeliver !== undefined) opts.maxDeliver = cfg.maxDeliver;
  if (cfg.onStatus !== undefined) opts.onStatus = cfg.onStatus;
  return NatsBus.open(opts);
}

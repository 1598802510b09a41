import { type EventBus, NatsBus } from "../storage/bus.ts";
import {
  CacheInvalidationPublisher,
  CacheInvalidationSubscriber,
  type InvalidationEvents,
} from "../storage/cacheInvalidation.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import type { AppDeps } from "./app.ts";
import type { BktEloModels } from "./learnerState.ts";
import { DuckMasteryReadStore, type MasteryReadStore, PgMasteryReadStore } from "./masteryReadStore.ts";
import {
  type BackendProbe,
  type BusConfig,
  openBus,
  openStreamStores,
  type StreamStoreConfig,
  type StreamStores,
} from "./streamStores.ts";
import { type ApplyResult, IncrementalUpdater } from "./updater.ts";

/**
 * Where `mastery serve` writes and reads scores. With no service configured: nothing here (createApp
 * builds its updater and read store on the embedded file). With MASTERY_PG_URL and/or
 * MASTERY_REDIS_URL: the SAME stores the stream worker opens (serving/streamStores.ts), so POST
 * /events goes through an IncrementalUpdater on PostgreSQL / Redis and GET /mastery reads what
 * any updater (this server's or a worker's) wrote. With `viaStream`: POST /events publishes to
 * NATS JetStream and a `mastery worker` applies the events.
 */
export class ServingBackendError extends Error {
  readonly code = "SERVING_BACKEND";
  constructor(message: string) {
    super(message);
    this.name = "ServingBackendError";
  }
}

/**
 * Cache TTL when other processes may write the scores this server reads and their invalidations
 * are not heard (no Redis, or the subscription is down) (ms).
 */
export const SHARED_STORE_CACHE_TTL_MS = 1000;

/** Cache TTL while cross-process invalidations are heard over Redis (ms; serving.yaml shared_cache_ttl_s). */
export const INVALIDATED_CACHE_TTL_MS = 300_000;

/**
 * Cross-process invalidation of the body cache (storage/cacheInvalidation.ts), wired by
 * openServingBackends when Redis is configured.
 */
export interface SharedCacheInvalidation {
  /** TTL while the subscription is up. */
  ttlMs: number;
  /**
   * Tells every server these students' bodies changed (after the write committed). A failed publish rejects,
   * and its keys are re-published in the background until Redis acknowledges them.
   */
  publish(studentKeys: readonly string[]): Promise<void>;
  /** Keys of failed publishes not yet re-published (an owed flush-all counts as 1). */
  owedKeys(): number;
  /** Subscribes (resolves once confirmed); `events.down` / `events.up` on loss / recovery. */
  subscribe(events: InvalidationEvents): Promise<void>;
}

export interface ServingBackendOptions {
  /** The server's embedded store (also used for the raw zone / learner_state when no service replaces it). */
  duck: DuckStore;
  stores: StreamStoreConfig;
  models: BktEloModels;
  /** Publish POST /events to this bus instead of applying them (needs a NATS URL and PostgreSQL). */
  viaStream?: BusConfig | undefined;
  /** Overrides SHARED_STORE_CACHE_TTL_MS. */
  cacheTtlMs?: number | undefined;
  /** Overrides INVALIDATED_CACHE_TTL_MS (0: no cross-process invalidation, the short TTL always). */
  invalidatedCacheTtlMs?: number | undefined;
  nowUs?: () => number;
}

export interface ServingBackends {
  /** Spread into createApp's deps (empty on the embedded default). */
  deps: Pick<
    AppDeps,
    | "updater"
    | "read"
    | "publishEvents"
    | "cacheTtlMs"
    | "cacheInvalidation"
    | "probes"
    | "alertStore"
    | "scoreStore"
  >;
  /** Where each store lives, for the startup log. */
  describe: string;
  stores: StreamStores | null;
  bus: EventBus | null;
  close(): Promise<void>;
}

export async function openServingBackends(opts: ServingBackendOptions): Promise<ServingBackends> {
  const cfg = opts.stores;
  if (opts.viaStream !== undefined) {
    if (opts.viaStream.natsUrl === undefined)
      throw new ServingBackendError(
        "--via-stream publishes POST /events to NATS JetStream: set MASTERY_NATS_URL (e.g. nats://127.0.0.1:4222)",
      );
    if (cfg.pgUrl === undefined)
      throw new ServingBackendError(
        "--via-stream needs MASTERY_PG_URL: the worker that applies the events runs in another process, " +
          "and a DuckDB file is held by one process (e.g. MASTERY_PG_URL=postgres://postgres@127.0.0.1:5432/test)",
      );
  }
  if (cfg.pgUrl === undefined && cfg.redisUrl === undefined && opts.viaStream === undefined)
    return { deps: {}, describe: `embedded ${cfg.dbPath}`, stores: null, bus: null, close: async () => {} };

  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const stores = await openStreamStores({ ...cfg, duck: opts.duck });
    closers.push(() => stores.close());
    let read: MasteryReadStore;
    if (stores.pg !== null) {
      // The same pool: a read takes any free connection, never one inside the updater's transaction.
      read = new PgMasteryReadStore(stores.pg, stores.state);
    } else {
      read = new DuckMasteryReadStore(opts.duck, stores.state);
    }
    // With PostgreSQL the score write has a connection of its own: a group's state update may run while
    // the previous group's scores are written (serving/coalescingUpdater.ts `pipelined`). Each request is
    // still answered only after its own group's scores are written, so a GET right after the POST sees
    // them. On the DuckDB file's one connection (Redis only), one batch at a time.
    const updater = new IncrementalUpdater({
      raw: stores.raw,
      state: stores.state,
      mastery: stores.mastery,
      models: opts.models,
      pipelineMastery: stores.pg !== null,
      ...(opts.nowUs !== undefined ? { nowUs: opts.nowUs } : {}),
    });
    let bus: EventBus | null = null;
    const probes: BackendProbe[] = [...stores.probes];
    const deps: ServingBackends["deps"] = {
      updater,
      read,
      cacheTtlMs: opts.cacheTtlMs ?? SHARED_STORE_CACHE_TTL_MS,
      probes,
      // Alerts are checked (and their state kept) where the scores are (PostgreSQL, or this server's
      // file), by whichever process applies the events: this server, or with --via-stream the workers.
      alertStore: stores.alerts,
      // Teacher corrections are served from where the scores are (PostgreSQL, or this server's file).
      scoreStore: { mastery: stores.mastery, onServerFile: stores.pg === null },
    };
    let describe = stores.describe;
    const invalidatedTtl = opts.invalidatedCacheTtlMs ?? INVALIDATED_CACHE_TTL_MS;
    if (cfg.redisUrl !== undefined && invalidatedTtl > 0) {
      const url = cfg.redisUrl;
      const prefix = cfg.redisPrefix ?? "mastery";
      const publisher = await CacheInvalidationPublisher.open(url, prefix);
      closers.push(() => publisher.close());
      deps.cacheInvalidation = {
        ttlMs: invalidatedTtl,
        publish: (keys) => publisher.publishKeys(keys),
        owedKeys: () => {
          const o = publisher.owed;
          return o.keys + (o.all ? 1 : 0);
        },
        subscribe: async (events) => {
          // This server's own key messages are skipped: it dropped those bodies before publishing.
          const sub = await CacheInvalidationSubscriber.open(url, prefix, events, publisher.origin);
          closers.push(() => sub.close());
        },
      };
      describe += `; body cache invalidated over Redis (${publisher.channel}, TTL ${invalidatedTtl} ms)`;
    }
    if (opts.viaStream !== undefined) {
      const b = await openBus(opts.viaStream);
      closers.push(() => b.close());
      bus = b;
      if (b instanceof NatsBus) probes.push({ backend: "nats", ping: () => b.ping() });
      const encoder = new TextEncoder();
      deps.publishEvents = async (events) => {
        // msgId = event_id: JetStream drops a re-publish of an id within its duplicate window.
        await Promise.all(
          events.map((e) =>
            b.publish(b.subjectFor(e.type), encoder.encode(JSON.stringify(e.record)), e.eventId),
          ),
        );
      };
      describe += `; POST /events -> bus ${opts.viaStream.natsUrl}`;
    }
    return { deps, describe, stores, bus, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * The invalidation publisher of a process that writes scores outside a server (`mastery worker`,
 * bulk jobs): null without Redis (then servers fall back to their short TTL anyway).
 */
export async function openCachePublisher(
  cfg: Pick<StreamStoreConfig, "redisUrl" | "redisPrefix">,
): Promise<CacheInvalidationPublisher | null> {
  if (cfg.redisUrl === undefined) return null;
  return CacheInvalidationPublisher.open(cfg.redisUrl, cfg.redisPrefix ?? "mastery");
}

/**
 * After a stream batch is applied (before it is acknowledged): publishes every student the batch
 * carried, duplicates included, since a duplicate may be the redelivery of a batch whose process
 * died after its write and before its publish.
 */
export async function publishApplied(
  publisher: Pick<CacheInvalidationPublisher, "publishKeys">,
  results: readonly ApplyResult[],
): Promise<void> {
  if (results.length === 0) return;
  await publisher.publishKeys(results.map((r) => r.studentKey));
}

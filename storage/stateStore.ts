import type { DuckDBAppender, DuckDBValue } from "@duckdb/node-api";
import { Redis } from "ioredis";
import type { LearnerState } from "../models/learnerState.ts";
import type { DuckStore } from "./duckdb.ts";
import { BIGINT, DOUBLE, DuckDBTimestampValue, LIST, listValue, VARCHAR } from "./duckdbApi.ts";
import { newestRevisions, type RevisionRow, revisionsSql } from "./revisionTable.ts";
import { STREAM_DDL } from "./schema.ts";
import { deltaTable } from "./servingTables.ts";
import { studentFilter } from "./studentFilter.ts";
import { redisTlsOptions } from "./tls.ts";
import { transactionRevisions } from "./transactionRevisions.ts";
import { BackendUnavailableError, faultDetail, isUnavailable, redactUrl } from "./unavailable.ts";

/**
 * learner_state for the incremental update path: per (student, topic) the online BKT + Elo state,
 * a revision counter moved by every commit, and the set of event ids already folded into the state
 * (so a redelivered event changes nothing). Commits are compare-and-set on the revision: a writer
 * that read revision r commits only if the key is still at r, else it reloads and recomputes. That
 * is what lets two worker processes share one consumer without losing or double-counting events.
 *
 * Two implementations: Redis (a hash per key and a set of processed event ids per key; commit is
 * one Lua script, so state, revision and processed set move atomically) and the embedded DuckDB
 * file (learner_state + learner_state_rev + learner_state_seen, one transaction per batch).
 */

/** The stored state: models/learnerState.ts LearnerState plus the versions of the models that built it. */
export interface StoredLearnerState extends LearnerState {
  bktModelVersion: string;
  eloModelVersion: string;
  /**
   * The latent filter's encoded state (models/latentState.ts) and the version of the latent model that
   * built it; null / null (or absent) when the writer had no latent model.
   */
  latent?: Uint8Array | null;
  latentModelVersion?: string | null;
  /**
   * The decayed rule state (models/ruleScorer.ts encodeRuleState: the sums and the count of events they fold)
   * and the rule model version that built it (serving/ruleStream.ts); null / null (or absent) when the writer
   * had no rule model or is a batch job.
   */
  rule?: Uint8Array | null;
  ruleModelVersion?: string | null;
}

/** A learner_state row as read from SQL (last_ts as epoch microseconds). */
export type LearnerStateRow = {
  student_key: string;
  topic_id: string;
  p_mastery: number;
  elo_ability: number;
  elo_n: number;
  bkt_n: number;
  last_ts_us: number | null;
  last_event_id: string | null;
  correct_streak: number;
  correct_n: number;
  bkt_correct_delta: number;
  bkt_incorrect_delta: number;
  bkt_learn_delta: number;
  bkt_streak_obs_delta: number;
  bkt_streak_learn_delta: number;
  elo_correct_delta: number;
  elo_incorrect_delta: number;
  elo_streak_delta: number;
  /** NULL in rows written before the column existed (then 1 - p_mastery). */
  p_unknown?: number | null;
  /** NULL in rows written before the column existed (then -1: unknown, the key is rebuilt). */
  event_n?: number | null;
};

/** LearnerState from a learner_state row (the one mapping used by the batch job, the updater and the server). */
export function learnerStateFromRow(r: LearnerStateRow): LearnerState {
  return {
    pMastery: r.p_mastery,
    pUnknown: r.p_unknown ?? 1 - r.p_mastery,
    bktN: r.bkt_n,
    eloAbility: r.elo_ability,
    eloN: r.elo_n,
    correctN: r.correct_n,
    correctStreak: r.correct_streak,
    lastTs: r.last_ts_us,
    lastEventId: r.last_event_id,
    eventN: r.event_n ?? -1,
    bktCorrectDelta: r.bkt_correct_delta,
    bktIncorrectDelta: r.bkt_incorrect_delta,
    bktLearnDelta: r.bkt_learn_delta,
    bktStreakObsDelta: r.bkt_streak_obs_delta,
    bktStreakLearnDelta: r.bkt_streak_learn_delta,
    eloCorrectDelta: r.elo_correct_delta,
    eloIncorrectDelta: r.elo_incorrect_delta,
    eloStreakDelta: r.elo_streak_delta,
  };
}

/** Numeric fields of StoredLearnerState, in a fixed order (Redis hash fields, comparisons). */
export const STATE_NUMBER_FIELDS = [
  "pMastery",
  "pUnknown",
  "bktN",
  "eloAbility",
  "eloN",
  "correctN",
  "correctStreak",
  "eventN",
  "bktCorrectDelta",
  "bktIncorrectDelta",
  "bktLearnDelta",
  "bktStreakObsDelta",
  "bktStreakLearnDelta",
  "eloCorrectDelta",
  "eloIncorrectDelta",
  "eloStreakDelta",
] as const;

export interface KeyLoad {
  studentKey: string;
  topicId: string;
  /** Event ids to check against the key's processed set. */
  eventIds: readonly string[];
}

export interface LoadedKey {
  studentKey: string;
  topicId: string;
  /** 0 when the key has never been committed. */
  rev: number;
  state: StoredLearnerState | null;
  /** Those of the asked event ids already folded into the state. */
  seen: Set<string>;
}

export interface StateCommit {
  studentKey: string;
  topicId: string;
  /** The revision the new state was computed from; the commit fails if the key moved since. */
  expectedRev: number;
  state: StoredLearnerState;
  /** Event ids folded in by this commit (added to the processed set). */
  processed: readonly string[];
  updatedAtUs: number;
}

export interface KeyStateEntry {
  studentKey: string;
  topicId: string;
  rev: number;
  state: StoredLearnerState;
}

export interface StateStore {
  load(keys: readonly KeyLoad[]): Promise<LoadedKey[]>;
  /**
   * Per commit: the new revision, or null when the key moved since it was loaded (reload and retry).
   * The commits of one call must be for distinct keys.
   */
  commit(commits: readonly StateCommit[]): Promise<(number | null)[]>;
  /**
   * The stored Elo ability of each of the student's `topicIds` that has a state (others absent): the
   * one field GET /recommendations reads, without loading and decoding whole states.
   */
  eloAbilities(studentKey: string, topicIds: readonly string[]): Promise<Map<string, number>>;
  /** Every stored key (the recompute compares them with a replay). */
  all(): Promise<KeyStateEntry[]>;
  close(): Promise<void>;
}

export class StateStoreError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "StateStoreError";
  }
}

// ------------------------------------------------------------------------------------------------
// Redis

/**
 * KEYS[1] = state hash, KEYS[2] = processed set. ARGV[1] = expected revision, ARGV[2] = number of
 * field/value pairs n, ARGV[3 .. 2+2n] = the pairs, then the processed event ids. Returns the new
 * revision, or 0 when the hash's revision is not the expected one (nothing is written then).
 */
const COMMIT_LUA = `
local cur = redis.call('HGET', KEYS[1], 'rev') or '0'
if cur ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[2])
local pairs = {}
for i = 3, 2 + 2 * n do pairs[#pairs + 1] = ARGV[i] end
local rev = tonumber(cur) + 1
pairs[#pairs + 1] = 'rev'
pairs[#pairs + 1] = tostring(rev)
redis.call('HSET', KEYS[1], unpack(pairs))
local ids = {}
for i = 3 + 2 * n, #ARGV do
  ids[#ids + 1] = ARGV[i]
  if #ids == 1000 then redis.call('SADD', KEYS[2], unpack(ids)); ids = {} end
end
if #ids > 0 then redis.call('SADD', KEYS[2], unpack(ids)) end
return rev
`;

/** The hash layout's fields besides `rev` (stateToPairs writes them; the packed commit drops them). */
const HASH_LAYOUT_FIELDS = [
  "studentKey",
  "topicId",
  ...STATE_NUMBER_FIELDS,
  "lastTs",
  "lastEventId",
  "hasLastEvent",
  "bktModelVersion",
  "eloModelVersion",
  "latent",
  "latentModelVersion",
  "rule",
  "ruleModelVersion",
  "updatedAtUs",
] as const;

/**
 * The packed layout's commit (RedisStateStore, layout "packed"): KEYS as COMMIT_LUA's; ARGV[1] = expected
 * revision, ARGV[2] = the packed state (packState), ARGV[3] = the Elo ability (its own field, for
 * eloAbilities' HMGET), then the processed event ids. Fields of the hash layout left from an older writer
 * are dropped when a key is first written packed. Returns the new revision, or 0 as COMMIT_LUA does.
 */
const PACKED_COMMIT_LUA = `
local cur = redis.call('HGET', KEYS[1], 'rev') or '0'
if cur ~= ARGV[1] then return 0 end
local rev = tonumber(cur) + 1
if redis.call('HEXISTS', KEYS[1], 'pMastery') == 1 then
  redis.call('HDEL', KEYS[1], ${HASH_LAYOUT_FIELDS.map((f) => `'${f}'`).join(", ")})
end
redis.call('HSET', KEYS[1], 's', ARGV[2], 'eloAbility', ARGV[3], 'rev', tostring(rev))
local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = ARGV[i]
  if #ids == 1000 then redis.call('SADD', KEYS[2], unpack(ids)); ids = {} end
end
if #ids > 0 then redis.call('SADD', KEYS[2], unpack(ids)) end
return rev
`;

/**
 * One key's load in one command (RedisStateStore.load): KEYS as COMMIT_LUA's; ARGV = the event ids to look
 * up. Returns { HGETALL of the state hash (flat field/value list), SMISMEMBER flags of the ids in the
 * processed set (in ARGV order; empty without ids) }: what an HGETALL and an SMISMEMBER sent side by side
 * return, as one command instead of two (each pipelined command costs the client its own encoding, reply
 * and promise: docs/benchmarks.md "The POST's CPU, round 4 (post16, 2026-12-05)"). Read only.
 */
const LOAD_LUA = `
local flags = {}
local ids = {}
for i = 1, #ARGV do
  ids[#ids + 1] = ARGV[i]
  if #ids == 1000 or i == #ARGV then
    local f = redis.call('SMISMEMBER', KEYS[2], unpack(ids))
    for j = 1, #f do flags[#flags + 1] = f[j] end
    ids = {}
  end
end
return { redis.call('HGETALL', KEYS[1]), flags }
`;

/**
 * How RedisStateStore writes a key's state. "packed" (the default): one field `s` with the whole state
 * (packState) next to `rev` and `eloAbility`, read and written as one value (half the client CPU of a
 * POST's state round trips: docs/benchmarks.md, serve12). "fields": one hash field per state field, as
 * versions before it wrote. Either reads both (a key written by an older server is read as it is), but
 * a server of an older version cannot read a packed key: while such servers still run (a rolling
 * upgrade from one), set MASTERY_REDIS_STATE_LAYOUT=fields, and unset it once they are gone.
 */
export type RedisStateLayout = "packed" | "fields";

/** MASTERY_REDIS_STATE_LAYOUT: "packed" (default) or "fields" (see RedisStateLayout). */
export function redisStateLayoutFromEnv(env: NodeJS.ProcessEnv = process.env): RedisStateLayout {
  const v = env.MASTERY_REDIS_STATE_LAYOUT;
  if (v === undefined || v === "" || v === "packed") return "packed";
  if (v === "fields") return "fields";
  throw new StateStoreError(
    "REDIS_CONFIG",
    `MASTERY_REDIS_STATE_LAYOUT=${v} must be "packed" (default) or "fields" (while servers of a version before the packed layout still run)`,
  );
}

const PREFIX = /^[A-Za-z0-9_.:-]{1,64}$/;

type RedisWithCommit = Redis & {
  masteryLoad(stateKey: string, seenKey: string, ...eventIds: string[]): Promise<[string[], number[]]>;
  masteryCommit(stateKey: string, seenKey: string, ...args: string[]): Promise<number>;
  masteryPackedCommit(stateKey: string, seenKey: string, ...args: string[]): Promise<number>;
};

export class RedisStateStore implements StateStore {
  private constructor(
    private readonly redis: RedisWithCommit,
    readonly prefix: string,
    private readonly url: string,
    readonly layout: RedisStateLayout,
  ) {}

  /**
   * Connects to `url` (e.g. redis://127.0.0.1:6379). Every key starts with `prefix` (default
   * "mastery"), so test runs and deployments can share one Redis.
   *
   * Fail fast, reconnect by itself: while Redis is down, commands are refused at once (no offline
   * queue piling up behind a dead socket) as BackendUnavailableError, a command that gets no answer
   * fails after `commandTimeoutMs`, and the client keeps reconnecting with a capped backoff, so
   * service resumes when Redis does, without a process restart.
   */
  static async open(
    url: string,
    prefix = "mastery",
    opts: { commandTimeoutMs?: number; connectTimeoutMs?: number; layout?: RedisStateLayout } = {},
  ): Promise<RedisStateStore> {
    const layout = opts.layout ?? redisStateLayoutFromEnv();
    if (!PREFIX.test(prefix))
      throw new StateStoreError(
        "REDIS_PREFIX",
        `Redis key prefix "${prefix}" must be 1-64 characters of letters, digits and _.:- (e.g. mastery_test_1)`,
      );
    const env = redisTimeoutsFromEnv();
    const redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? env.commandTimeoutMs,
      connectTimeout: opts.connectTimeoutMs ?? env.connectTimeoutMs,
      // Forever, 100 ms doubling to 2 s between attempts.
      retryStrategy: (times: number) => Math.min(2000, 100 * 2 ** Math.min(times - 1, 5)),
      reconnectOnError: (err: Error) => /READONLY|LOADING/.test(err.message),
      ...redisTlsOptions(url),
    }) as RedisWithCommit;
    redis.on("error", () => {});
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw new StateStoreError(
        "REDIS_CONNECT",
        `cannot connect to Redis at ${redactUrl(url)}: ${faultDetail(err)}. Check MASTERY_REDIS_URL (e.g. redis://127.0.0.1:6379)` +
          (url.startsWith("rediss:")
            ? " and that MASTERY_REDIS_CA names the CA that signed the server's certificate."
            : "."),
      );
    }
    redis.defineCommand("masteryLoad", { numberOfKeys: 2, lua: LOAD_LUA });
    redis.defineCommand("masteryCommit", { numberOfKeys: 2, lua: COMMIT_LUA });
    redis.defineCommand("masteryPackedCommit", { numberOfKeys: 2, lua: PACKED_COMMIT_LUA });
    return new RedisStateStore(redis, prefix, url, layout);
  }

  /** Round trip to Redis (for /readyz); throws BackendUnavailableError when it does not answer. */
  async ping(): Promise<void> {
    await this.call(() => this.redis.ping());
  }

  /** Runs one Redis call; a connection-level failure becomes BackendUnavailableError("redis"). */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof BackendUnavailableError || !isUnavailable(err)) throw err;
      throw new BackendUnavailableError("redis", `${redactUrl(this.url)}: ${faultDetail(err)}`, {
        cause: err,
      });
    }
  }

  // The {...} hash tag keeps a key's state and processed set in one Redis Cluster slot (the Lua
  // script touches both).
  private stateKey(studentKey: string, topicId: string): string {
    return `${this.prefix}:ls:{${studentKey}:${topicId}}`;
  }

  private seenKey(studentKey: string, topicId: string): string {
    return `${this.prefix}:seen:{${studentKey}:${topicId}}`;
  }

  async eloAbilities(studentKey: string, topicIds: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (topicIds.length === 0) return out;
    // Two fields a key (rev tells a stored state from none, as load() does), one round trip.
    const p = this.redis.pipeline();
    for (const t of topicIds) p.hmget(this.stateKey(studentKey, t), "rev", "eloAbility");
    const res = await this.call(async () => unwrapPipeline(await p.exec()));
    topicIds.forEach((t, i) => {
      const [err, fields] = res[i] ?? [null, []];
      if (err) throw err;
      const [rev, ability] = fields as (string | null)[];
      if (rev !== null && rev !== undefined) out.set(t, Number(ability ?? "0"));
    });
    return out;
  }

  async load(keys: readonly KeyLoad[]): Promise<LoadedKey[]> {
    if (keys.length === 0) return [];
    const p = this.redis.pipeline() as unknown as {
      masteryLoad(...args: string[]): void;
      exec(): Promise<[Error | null, unknown][] | null>;
    };
    for (const k of keys)
      p.masteryLoad(
        this.stateKey(k.studentKey, k.topicId),
        this.seenKey(k.studentKey, k.topicId),
        ...k.eventIds,
      );
    const res = await this.call(async () => unwrapPipeline(await p.exec()));
    const out: LoadedKey[] = [];
    let j = 0;
    for (const k of keys) {
      const [err, reply] = res[j++] ?? [null, [[], []]];
      if (err) throw err;
      const [fields, flags] = reply as [string[], number[]];
      const h: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) h[fields[i]!] = fields[i + 1]!;
      const seen = new Set<string>();
      for (let i = 0; i < flags.length; i++) if (flags[i] === 1) seen.add(k.eventIds[i]!);
      out.push({
        studentKey: k.studentKey,
        topicId: k.topicId,
        rev: h.rev === undefined ? 0 : Number(h.rev),
        state: h.rev === undefined ? null : stateOfKey(h).state,
        seen,
      });
    }
    return out;
  }

  async commit(commits: readonly StateCommit[]): Promise<(number | null)[]> {
    if (commits.length === 0) return [];
    const p = this.redis.pipeline() as unknown as {
      masteryCommit(...args: string[]): void;
      masteryPackedCommit(...args: string[]): void;
      exec(): Promise<[Error | null, unknown][] | null>;
    };
    for (const c of commits) {
      if (this.layout === "packed") {
        p.masteryPackedCommit(
          this.stateKey(c.studentKey, c.topicId),
          this.seenKey(c.studentKey, c.topicId),
          String(c.expectedRev),
          packState(c),
          String(c.state.eloAbility),
          ...c.processed,
        );
        continue;
      }
      const pairs = stateToPairs(c);
      p.masteryCommit(
        this.stateKey(c.studentKey, c.topicId),
        this.seenKey(c.studentKey, c.topicId),
        String(c.expectedRev),
        String(pairs.length / 2),
        ...pairs,
        ...c.processed,
      );
    }
    const res = await this.call(async () => unwrapPipeline(await p.exec()));
    return res.map(([err, rev]) => {
      if (err) throw err;
      return Number(rev) === 0 ? null : Number(rev);
    });
  }

  async all(): Promise<KeyStateEntry[]> {
    const out: KeyStateEntry[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await this.call(() =>
        this.redis.scan(cursor, "MATCH", `${this.prefix}:ls:*`, "COUNT", 1000),
      );
      cursor = next;
      if (keys.length === 0) continue;
      const p = this.redis.pipeline();
      for (const k of keys) p.hgetall(k);
      const res = await this.call(async () => unwrapPipeline(await p.exec()));
      for (const [err, hash] of res) {
        if (err) throw err;
        const h = hash as Record<string, string>;
        if (h.rev === undefined) continue;
        const { studentKey, topicId, state } = stateOfKey(h);
        out.push({ studentKey, topicId, rev: Number(h.rev), state });
      }
    } while (cursor !== "0");
    return out;
  }

  /** Deletes every key under the prefix (tests clean up with this). */
  async clear(): Promise<number> {
    let cursor = "0";
    let n = 0;
    do {
      const [next, keys] = await this.call(() =>
        this.redis.scan(cursor, "MATCH", `${this.prefix}:*`, "COUNT", 1000),
      );
      cursor = next;
      if (keys.length > 0) n += await this.call(() => this.redis.del(...keys));
    } while (cursor !== "0");
    return n;
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}

/**
 * Closes a Redis connection without hanging: quit() waits for a reply that never comes while Redis is
 * down, so a connection that is not ready is dropped at once, and a quit gets at most 1 s.
 */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status !== "ready") {
    redis.disconnect();
    return;
  }
  await Promise.race([redis.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
  redis.disconnect();
}

/**
 * A pipeline's replies; if any command failed on the connection (not on its own data), the whole
 * pipeline is reported as that failure so callers see one unavailable error, not a half result.
 */
function unwrapPipeline(res: [Error | null, unknown][] | null): [Error | null, unknown][] {
  if (res === null) throw new BackendUnavailableError("redis", "pipeline discarded (connection lost)");
  for (const [err] of res) if (err !== null && isUnavailable(err)) throw err;
  return res;
}

/** MASTERY_REDIS_COMMAND_TIMEOUT_MS (default 1000) and MASTERY_REDIS_CONNECT_TIMEOUT_MS (default 2000). */
export function redisTimeoutsFromEnv(env: NodeJS.ProcessEnv = process.env): {
  commandTimeoutMs: number;
  connectTimeoutMs: number;
} {
  const int = (name: string, fallback: number): number => {
    const v = env[name];
    if (v === undefined || v === "") return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 10)
      throw new StateStoreError(
        "REDIS_CONFIG",
        `${name}=${v} must be an integer >= 10 (milliseconds, e.g. ${fallback})`,
      );
    return n;
  };
  return {
    commandTimeoutMs: int("MASTERY_REDIS_COMMAND_TIMEOUT_MS", 1000),
    connectTimeoutMs: int("MASTERY_REDIS_CONNECT_TIMEOUT_MS", 2000),
  };
}

function stateToPairs(c: StateCommit): string[] {
  const s = c.state;
  const pairs: string[] = ["studentKey", c.studentKey, "topicId", c.topicId];
  // String(x) of a double is its shortest round-trip form, so Number() reads back the same bits.
  for (const f of STATE_NUMBER_FIELDS) pairs.push(f, String(s[f]));
  pairs.push("lastTs", s.lastTs === null ? "" : String(s.lastTs));
  pairs.push("lastEventId", s.lastEventId ?? "");
  pairs.push("hasLastEvent", s.lastEventId === null ? "0" : "1");
  pairs.push("bktModelVersion", s.bktModelVersion, "eloModelVersion", s.eloModelVersion);
  // The latent state as base64 (hgetall reads strings); "" = none.
  pairs.push("latent", s.latent == null ? "" : Buffer.from(s.latent).toString("base64"));
  pairs.push("latentModelVersion", s.latentModelVersion ?? "");
  pairs.push("rule", s.rule == null ? "" : Buffer.from(s.rule).toString("base64"));
  pairs.push("ruleModelVersion", s.ruleModelVersion ?? "");
  pairs.push("updatedAtUs", String(c.updatedAtUs));
  return pairs;
}

/**
 * The packed layout's `s`: "<rev>\n<numbers>\n<JSON strings>", where rev is the revision this commit makes
 * (a reader takes `s` only while the hash's rev is that one: a hash-layout writer of an older version
 * updates the fields and rev and leaves `s` behind), numbers are STATE_NUMBER_FIELDS, lastTs ("" = null)
 * and updatedAtUs as String() writes them (the shortest text Number() reads back to the same double, as
 * the hash layout stores them), and the strings (any characters) a JSON array of the key, the last event
 * id, the model versions, the latent state in base64 and its version, then the rule state in base64 and its
 * version (absent in texts of writers before it: none).
 */
function packState(c: StateCommit): string {
  const s = c.state;
  let numbers = `${c.expectedRev + 1}\n`;
  for (const f of STATE_NUMBER_FIELDS) numbers += `${String(s[f])},`;
  numbers += `${s.lastTs === null ? "" : String(s.lastTs)},${String(c.updatedAtUs)}\n`;
  return (
    numbers +
    JSON.stringify([
      c.studentKey,
      c.topicId,
      s.lastEventId,
      s.bktModelVersion,
      s.eloModelVersion,
      s.latent == null ? null : Buffer.from(s.latent).toString("base64"),
      s.latentModelVersion ?? null,
      s.rule == null ? null : Buffer.from(s.rule).toString("base64"),
      s.ruleModelVersion ?? null,
    ])
  );
}

/** packState's text back, or null when it is not for revision `rev` (then the hash fields hold the state). */
function unpackState(
  text: string,
  rev: string,
): { studentKey: string; topicId: string; state: StoredLearnerState } | null {
  const a = text.indexOf("\n");
  const b = text.indexOf("\n", a + 1);
  if (a < 0 || b < 0 || text.slice(0, a) !== rev) return null;
  const n = text.slice(a + 1, b).split(",");
  const [
    studentKey,
    topicId,
    lastEventId,
    bktModelVersion,
    eloModelVersion,
    latent,
    latentModelVersion,
    rule,
    ruleModelVersion,
  ] = JSON.parse(text.slice(b + 1)) as [
    string,
    string,
    string | null,
    string,
    string,
    string | null,
    string | null,
    (string | null)?,
    (string | null)?,
  ];
  const num = (i: number) => Number(n[i]);
  const lastTs = n[STATE_NUMBER_FIELDS.length];
  return {
    studentKey,
    topicId,
    state: {
      pMastery: num(0),
      pUnknown: num(1),
      bktN: num(2),
      eloAbility: num(3),
      eloN: num(4),
      correctN: num(5),
      correctStreak: num(6),
      eventN: num(7),
      bktCorrectDelta: num(8),
      bktIncorrectDelta: num(9),
      bktLearnDelta: num(10),
      bktStreakObsDelta: num(11),
      bktStreakLearnDelta: num(12),
      eloCorrectDelta: num(13),
      eloIncorrectDelta: num(14),
      eloStreakDelta: num(15),
      lastTs: lastTs === undefined || lastTs === "" ? null : Number(lastTs),
      lastEventId,
      bktModelVersion,
      eloModelVersion,
      // As the hash layout reads them: no bytes and no version are both "none".
      latent: latent === null || latent === "" ? null : new Uint8Array(Buffer.from(latent, "base64")),
      latentModelVersion: latentModelVersion === "" ? null : latentModelVersion,
      rule: rule == null || rule === "" ? null : new Uint8Array(Buffer.from(rule, "base64")),
      ruleModelVersion: ruleModelVersion == null || ruleModelVersion === "" ? null : ruleModelVersion,
    },
  };
}

/** A stored key's state in either layout (the packed one while it is current, else the hash fields). */
function stateOfKey(h: Record<string, string>): {
  studentKey: string;
  topicId: string;
  state: StoredLearnerState;
} {
  const packed = h.s !== undefined && h.rev !== undefined ? unpackState(h.s, h.rev) : null;
  return packed ?? { studentKey: h.studentKey ?? "", topicId: h.topicId ?? "", state: stateFromHash(h) };
}

function stateFromHash(h: Record<string, string>): StoredLearnerState {
  const num = (f: string) => Number(h[f] ?? "0");
  return {
    pMastery: num("pMastery"),
    pUnknown: h.pUnknown === undefined ? 1 - num("pMastery") : Number(h.pUnknown),
    bktN: num("bktN"),
    eloAbility: num("eloAbility"),
    eloN: num("eloN"),
    correctN: num("correctN"),
    correctStreak: num("correctStreak"),
    lastTs: h.lastTs === undefined || h.lastTs === "" ? null : Number(h.lastTs),
    lastEventId: h.hasLastEvent === "1" ? (h.lastEventId ?? "") : null,
    eventN: h.eventN === undefined ? -1 : Number(h.eventN),
    bktCorrectDelta: num("bktCorrectDelta"),
    bktIncorrectDelta: num("bktIncorrectDelta"),
    bktLearnDelta: num("bktLearnDelta"),
    bktStreakObsDelta: num("bktStreakObsDelta"),
    bktStreakLearnDelta: num("bktStreakLearnDelta"),
    eloCorrectDelta: num("eloCorrectDelta"),
    eloIncorrectDelta: num("eloIncorrectDelta"),
    eloStreakDelta: num("eloStreakDelta"),
    bktModelVersion: h.bktModelVersion ?? "",
    eloModelVersion: h.eloModelVersion ?? "",
    latent:
      h.latent === undefined || h.latent === "" ? null : new Uint8Array(Buffer.from(h.latent, "base64")),
    latentModelVersion:
      h.latentModelVersion === undefined || h.latentModelVersion === "" ? null : h.latentModelVersion,
    rule: h.rule === undefined || h.rule === "" ? null : new Uint8Array(Buffer.from(h.rule, "base64")),
    ruleModelVersion:
      h.ruleModelVersion === undefined || h.ruleModelVersion === "" ? null : h.ruleModelVersion,
  };
}

// ------------------------------------------------------------------------------------------------
// DuckDB (embedded: one process holds the file, and the updater runs one batch at a time, so the
// revision check never fails in practice; it is kept so both stores behave the same)

/** A row of DuckStateStore.load's statement: a key, its state revision (revision_seq null: none), rev, seen ids. */
type LoadRow = DuckStateRow & { revision_seq: number | null; seen_ids: string[] | null };

type DuckStateRow = LearnerStateRow & {
  bkt_model_version: string;
  elo_model_version: string;
  /** A Buffer from getRowObjectsJS. */
  latent_state: Uint8Array | null;
  latent_model_version: string | null;
  rule_state: Uint8Array | null;
  rule_model_version: string | null;
  rev: bigint | number | null;
};

const DUCK_SELECT = `SELECT s.student_key, s.topic_id, s.p_mastery, s.elo_ability, s.elo_n, s.bkt_n,
  epoch_us(s.last_ts)::DOUBLE AS last_ts_us, s.last_event_id, s.correct_streak, s.correct_n,
  s.bkt_correct_delta, s.bkt_incorrect_delta, s.bkt_learn_delta, s.bkt_streak_obs_delta,
  s.bkt_streak_learn_delta, s.elo_correct_delta, s.elo_incorrect_delta, s.elo_streak_delta,
  s.bkt_model_version, s.elo_model_version, s.p_unknown, s.event_n, s.latent_state, s.latent_model_version,
  s.rule_state, s.rule_model_version, r.rev
  FROM learner_state s LEFT JOIN learner_state_rev r USING (student_key, topic_id)`;

/** DUCK_SELECT's columns read from the base and delta revisions of learner_state (storage/revisionTable.ts). */
const DUCK_REVISION_COLUMNS = `student_key, topic_id, p_mastery, elo_ability, elo_n, bkt_n,
  epoch_us(last_ts)::DOUBLE AS last_ts_us, last_event_id, correct_streak, correct_n,
  bkt_correct_delta, bkt_incorrect_delta, bkt_learn_delta, bkt_streak_obs_delta,
  bkt_streak_learn_delta, elo_correct_delta, elo_incorrect_delta, elo_streak_delta,
  bkt_model_version, elo_model_version, p_unknown, event_n, latent_state, latent_model_version, rule_state,
  rule_model_version`;

const micros = (us: number): DuckDBTimestampValue => new DuckDBTimestampValue(BigInt(Math.round(us)));

/** learner_state columns in the order appendLearnerStateRow writes them. */
export const LEARNER_STATE_COLUMNS = `student_key, topic_id, p_mastery, elo_ability, elo_n, bkt_n, last_ts, last_event_id,
  correct_streak, updated_at, correct_n, bkt_correct_delta, bkt_incorrect_delta, bkt_learn_delta,
  bkt_streak_obs_delta, bkt_streak_learn_delta, elo_correct_delta, elo_incorrect_delta, elo_streak_delta,
  bkt_model_version, elo_model_version, p_unknown, event_n`;

/** The stream's learner_state columns: LEARNER_STATE_COLUMNS, the latent filter's state and the rule state. */
const STREAM_STATE_COLUMNS = `${LEARNER_STATE_COLUMNS}, latent_state, latent_model_version, rule_state, rule_model_version`;

/** Appends one learner_state row in LEARNER_STATE_COLUMNS order (used by the stream updater). */
export function appendLearnerStateRow(
  ap: DuckDBAppender,
  studentKey: string,
  topicId: string,
  s: LearnerState,
  updatedAtUs: number,
  bktModelVersion: string,
  eloModelVersion: string,
  /** False: the caller appends more columns (the stream's latent state) and ends the row. */
  endRow = true,
): void {
  ap.appendVarchar(studentKey);
  ap.appendVarchar(topicId);
  ap.appendDouble(s.pMastery);
  ap.appendDouble(s.eloAbility);
  ap.appendInteger(s.eloN);
  ap.appendInteger(s.bktN);
  if (s.lastTs === null) ap.appendNull();
  else ap.appendTimestamp(micros(s.lastTs));
  if (s.lastEventId === null) ap.appendNull();
  else ap.appendVarchar(s.lastEventId);
  ap.appendInteger(s.correctStreak);
  ap.appendTimestamp(micros(updatedAtUs));
  ap.appendInteger(s.correctN);
  for (const v of [
    s.bktCorrectDelta,
    s.bktIncorrectDelta,
    s.bktLearnDelta,
    s.bktStreakObsDelta,
    s.bktStreakLearnDelta,
    s.eloCorrectDelta,
    s.eloIncorrectDelta,
    s.eloStreakDelta,
  ])
    ap.appendDouble(v);
  ap.appendVarchar(bktModelVersion);
  ap.appendVarchar(eloModelVersion);
  ap.appendDouble(s.pUnknown);
  ap.appendInteger(s.eventN);
  if (endRow) ap.endRow();
}

/** SELECT of the column lists stateLists binds, in LEARNER_STATE_COLUMNS order. */
const STATE_LIST_SELECT = `SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::DOUBLE[]),
  unnest($4::DOUBLE[]), unnest($5::BIGINT[]), unnest($6::BIGINT[]), make_timestamp(unnest($7::BIGINT[])),
  unnest($8::VARCHAR[]), unnest($9::BIGINT[]), make_timestamp(unnest($10::BIGINT[])), unnest($11::BIGINT[]),
  unnest($12::DOUBLE[]), unnest($13::DOUBLE[]), unnest($14::DOUBLE[]), unnest($15::DOUBLE[]), unnest($16::DOUBLE[]),
  unnest($17::DOUBLE[]), unnest($18::DOUBLE[]), unnest($19::DOUBLE[]), unnest($20::VARCHAR[]), unnest($21::VARCHAR[]),
  unnest($22::DOUBLE[]), unnest($23::BIGINT[])`;

// Every list bound with its type: an untyped list takes the type of its first value (a delta of exactly 0 would make an INTEGER list).
const STATE_LIST_TYPES = [
  LIST(VARCHAR),
  LIST(VARCHAR),
  LIST(DOUBLE),
  LIST(DOUBLE),
  LIST(BIGINT),
  LIST(BIGINT),
  LIST(BIGINT),
  LIST(VARCHAR),
  LIST(BIGINT),
  LIST(BIGINT),
  LIST(BIGINT),
  ...Array.from({ length: 8 }, () => LIST(DOUBLE)),
  LIST(VARCHAR),
  LIST(VARCHAR),
  LIST(DOUBLE),
  LIST(BIGINT),
];

/**
 * STATE_LIST_SELECT + the latent filter's state (base64 in a VARCHAR list: a BLOB per row) and its model
 * version, then the rule state and its model version the same way.
 */
const STREAM_STATE_LIST_SELECT = `${STATE_LIST_SELECT}, from_base64(unnest($24::VARCHAR[])), unnest($25::VARCHAR[]),
  from_base64(unnest($26::VARCHAR[])), unnest($27::VARCHAR[])`;
const STREAM_STATE_LIST_TYPES = [
  ...STATE_LIST_TYPES,
  LIST(VARCHAR),
  LIST(VARCHAR),
  LIST(VARCHAR),
  LIST(VARCHAR),
];

/** stateLists + the latent columns, in STREAM_STATE_COLUMNS order. */
function streamStateLists(commits: readonly StateCommit[]): DuckDBValue[] {
  const latent = commits.map((c) =>
    c.state.latent == null ? null : Buffer.from(c.state.latent).toString("base64"),
  );
  const version = commits.map((c) => c.state.latentModelVersion ?? null);
  const rule = commits.map((c) =>
    c.state.rule == null ? null : Buffer.from(c.state.rule).toString("base64"),
  );
  const ruleVersion = commits.map((c) => c.state.ruleModelVersion ?? null);
  return [
    ...stateLists(commits),
    listValue(latent),
    listValue(version),
    listValue(rule),
    listValue(ruleVersion),
  ];
}

/** The commits' states as column lists for STATE_LIST_SELECT (the values appendLearnerStateRow appends). */
function stateLists(commits: readonly StateCommit[]): DuckDBValue[] {
  const us = (v: number): bigint => BigInt(Math.round(v));
  const col = <T>(f: (c: StateCommit) => T): T[] => commits.map(f);
  return [
    col((c) => c.studentKey),
    col((c) => c.topicId),
    col((c) => c.state.pMastery),
    col((c) => c.state.eloAbility),
    col((c) => BigInt(c.state.eloN)),
    col((c) => BigInt(c.state.bktN)),
    col((c) => (c.state.lastTs === null ? null : us(c.state.lastTs))),
    col((c) => c.state.lastEventId),
    col((c) => BigInt(c.state.correctStreak)),
    col((c) => us(c.updatedAtUs)),
    col((c) => BigInt(c.state.correctN)),
    col((c) => c.state.bktCorrectDelta),
    col((c) => c.state.bktIncorrectDelta),
    col((c) => c.state.bktLearnDelta),
    col((c) => c.state.bktStreakObsDelta),
    col((c) => c.state.bktStreakLearnDelta),
    col((c) => c.state.eloCorrectDelta),
    col((c) => c.state.eloIncorrectDelta),
    col((c) => c.state.eloStreakDelta),
    col((c) => c.state.bktModelVersion),
    col((c) => c.state.eloModelVersion),
    col((c) => c.state.pUnknown),
    col((c) => BigInt(c.state.eventN)),
  ].map((values) => listValue(values as DuckDBValue[]));
}

function stateFromDuck(r: DuckStateRow): StoredLearnerState {
  return {
    ...learnerStateFromRow(r),
    bktModelVersion: r.bkt_model_version,
    eloModelVersion: r.elo_model_version,
    latent: r.latent_state === null ? null : Uint8Array.from(r.latent_state),
    latentModelVersion: r.latent_model_version,
    rule: r.rule_state == null ? null : Uint8Array.from(r.rule_state),
    ruleModelVersion: r.rule_model_version ?? null,
  };
}

export class DuckStateStore implements StateStore {
  private constructor(private readonly duck: DuckStore) {}

  static async open(duck: DuckStore): Promise<DuckStateStore> {
    for (const ddl of STREAM_DDL) await duck.run(ddl);
    return new DuckStateStore(duck);
  }

  async eloAbilities(studentKey: string, topicIds: readonly string[]): Promise<Map<string, number>> {
    if (topicIds.length === 0) return new Map();
    // The student's revisions, the newest per topic picked here (storage/revisionTable.ts).
    const rows = await this.duck.all<{ topic_id: string; elo_ability: number } & RevisionRow>(
      revisionsSql(
        "learner_state",
        "topic_id, elo_ability",
        "student_key = $1 AND topic_id IN (SELECT unnest($2::VARCHAR[]))",
      ),
      [studentKey, listValue([...topicIds])],
    );
    return new Map(
      newestRevisions("learner_state", rows, ["student_key"]).map((r) => [r.topic_id, r.elo_ability]),
    );
  }

  async load(keys: readonly KeyLoad[]): Promise<LoadedKey[]> {
    if (keys.length === 0) return [];
    const sks = listValue(keys.map((k) => k.studentKey));
    const tps = listValue(keys.map((k) => k.topicId));
    // The batch's students as constants (storage/studentFilter.ts) filter the base and delta scans of
    // learner_state, and the newest revision per key is picked here (storage/revisionTable.ts). Through the
    // view, ten keys built its newest-row anti-join for every key (~100-400 ms of CPU at 10,000 students x
    // 20 topics) unless the students were constants; the view's window and join still cost each read.
    const f = studentFilter(
      "student_key",
      keys.map((k) => k.studentKey),
      4,
    );
    const keyList = `(SELECT DISTINCT unnest($1::VARCHAR[]) AS student_key, unnest($2::VARCHAR[]) AS topic_id) k`;
    const byKey = new Map<string, { row: DuckStateRow | null; rev: number }>();
    const seenBy = new Map<string, Set<string>>();
    if (f.params.length > 0) {
      // One statement: each key's state revisions, its learner_state_rev and which of the batch's event ids
      // its seen set holds (one statement less than a separate seen read). The revision and seen tables are
      // read through the same student filter: joined with the keys alone, each was scanned whole, and both
      // grow with every key and event streamed.
      const ids = [...new Set(keys.flatMap((k) => k.eventIds))];
      const rows = await this.duck.allPrepared<LoadRow>(
        `SELECT * FROM ${keyList}
         LEFT JOIN (${revisionsSql("learner_state", DUCK_REVISION_COLUMNS, f.sql)}) s USING (student_key, topic_id)
         LEFT JOIN (SELECT student_key, topic_id, rev FROM learner_state_rev WHERE ${f.sql}) r
           USING (student_key, topic_id)
         LEFT JOIN (SELECT student_key, topic_id, list(event_id) AS seen_ids FROM learner_state_seen
                    WHERE ${f.sql} AND list_contains($3::VARCHAR[], event_id) GROUP BY student_key, topic_id) q
           USING (student_key, topic_id)`,
        [sks, tps, listValue(ids), ...f.params],
        [LIST(VARCHAR), LIST(VARCHAR), LIST(VARCHAR), ...f.params.map(() => VARCHAR)],
      );
      // The newest revision of each key, as newestRevisions picks it (a delta row over the base row, the
      // highest delta_seq over other delta rows); revision_seq is null only on a key without any state row.
      const seq = new Map<string, number>();
      for (const r of rows) {
        const id = `${r.student_key}\u0000${r.topic_id}`;
        const at = r.revision_seq ?? Number.NEGATIVE_INFINITY;
        const held = seq.get(id);
        if (held !== undefined && held >= at) continue;
        seq.set(id, at);
        byKey.set(id, { row: r.revision_seq === null ? null : r, rev: r.rev === null ? 0 : Number(r.rev) });
        if (r.seen_ids !== null && r.seen_ids.length > 0) seenBy.set(id, new Set(r.seen_ids));
      }
    } else {
      for (const r of await this.duck.allPrepared<DuckStateRow>(
        `${DUCK_SELECT} JOIN ${keyList} USING (student_key, topic_id)`,
        [sks, tps],
      ))
        byKey.set(`${r.student_key}\u0000${r.topic_id}`, { row: r, rev: r.rev === null ? 0 : Number(r.rev) });
      for (const [id, seen] of await this.seenOf(keys)) seenBy.set(id, seen);
    }
    const known = transactionRevisions(this.duck)?.state;
    return keys.map((k) => {
      const id = `${k.studentKey}\u0000${k.topicId}`;
      const r = byKey.get(id);
      const rev = r?.rev ?? 0;
      known?.set(id, rev);
      // Only the event ids asked for this key (an assignment's event id is shared by its topics' keys).
      const held = seenBy.get(id);
      const seen = new Set<string>();
      if (held !== undefined) for (const e of k.eventIds) if (held.has(e)) seen.add(e);
      return {
        studentKey: k.studentKey,
        topicId: k.topicId,
        rev,
        state: r?.row == null ? null : stateFromDuck(r.row),
        seen,
      };
    });
  }

  /** The asked event ids that each key's seen set holds (the read of a group of more students than a filter takes). */
  private async seenOf(keys: readonly KeyLoad[]): Promise<Map<string, Set<string>>> {
    const ids: string[] = [];
    const idSk: string[] = [];
    const idTp: string[] = [];
    for (const k of keys)
      for (const e of k.eventIds) {
        ids.push(e);
        idSk.push(k.studentKey);
        idTp.push(k.topicId);
      }
    const seenBy = new Map<string, Set<string>>();
    if (ids.length === 0) return seenBy;
    const seenRows = await this.duck.allPrepared<{ student_key: string; topic_id: string; event_id: string }>(
      `SELECT s.student_key, s.topic_id, s.event_id FROM learner_state_seen s
       JOIN (SELECT unnest($1::VARCHAR[]) AS student_key, unnest($2::VARCHAR[]) AS topic_id,
                    unnest($3::VARCHAR[]) AS event_id) q USING (student_key, topic_id, event_id)`,
      [listValue(idSk), listValue(idTp), listValue(ids)],
    );
    for (const r of seenRows) {
      const id = `${r.student_key}\u0000${r.topic_id}`;
      let s = seenBy.get(id);
      if (s === undefined) {
        s = new Set();
        seenBy.set(id, s);
      }
      s.add(r.event_id);
    }
    return seenBy;
  }

  async commit(commits: readonly StateCommit[]): Promise<(number | null)[]> {
    if (commits.length === 0) return [];
    const d = this.duck;
    return d.transaction(async () => {
      const inTransaction = transactionRevisions(d);
      const known = inTransaction?.state ?? null;
      let revs: Map<string, number>;
      if (known !== null && commits.every((c) => known.has(`${c.studentKey}\u0000${c.topicId}`))) {
        // Every key's revision was read (or written) in this transaction: what a read would return now.
        revs = new Map(
          commits.map((c) => [
            `${c.studentKey}\u0000${c.topicId}`,
            known.get(`${c.studentKey}\u0000${c.topicId}`)!,
          ]),
        );
      } else {
        const revRows = await d.allPrepared<{ student_key: string; topic_id: string; rev: bigint }>(
          `SELECT student_key, topic_id, rev FROM learner_state_rev
           JOIN (SELECT DISTINCT unnest($1::VARCHAR[]) AS student_key, unnest($2::VARCHAR[]) AS topic_id) k
             USING (student_key, topic_id)`,
          [listValue(commits.map((c) => c.studentKey)), listValue(commits.map((c) => c.topicId))],
        );
        revs = new Map(commits.map((c) => [`${c.studentKey}\u0000${c.topicId}`, 0]));
        for (const r of revRows) revs.set(`${r.student_key}\u0000${r.topic_id}`, Number(r.rev));
      }
      const out: (number | null)[] = [];
      const ok: StateCommit[] = [];
      for (const c of commits) {
        const id = `${c.studentKey}\u0000${c.topicId}`;
        const rev = revs.get(id) ?? 0;
        if (rev !== c.expectedRev) {
          out.push(null);
          continue;
        }
        revs.set(id, rev + 1);
        out.push(rev + 1);
        ok.push(c);
      }
      if (ok.length === 0) return out;
      // One statement, the rows as typed column lists (no staging table to create, fill and drop).
      await d.runPrepared(
        `INSERT INTO ${deltaTable("learner_state")} (${STREAM_STATE_COLUMNS}) ${STREAM_STATE_LIST_SELECT}`,
        streamStateLists(ok),
        STREAM_STATE_LIST_TYPES,
      );
      const final = new Map<string, { sk: string; tp: string; rev: number }>();
      for (const c of ok)
        final.set(`${c.studentKey}\u0000${c.topicId}`, { sk: c.studentKey, tp: c.topicId, rev: 0 });
      for (const f of final.values()) f.rev = revs.get(`${f.sk}\u0000${f.tp}`)!;
      const fs = [...final.values()];
      await d.runPrepared(
        `INSERT OR REPLACE INTO learner_state_rev
         SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::BIGINT[])`,
        [
          listValue(fs.map((f) => f.sk)),
          listValue(fs.map((f) => f.tp)),
          listValue(fs.map((f) => BigInt(f.rev))),
        ],
      );
      if (inTransaction !== null)
        for (const f of fs) {
          inTransaction.state.set(`${f.sk}\u0000${f.tp}`, f.rev);
          inTransaction.committed.set(`${f.sk}\u0000${f.tp}`, f.rev);
        }
      const sk: string[] = [];
      const tp: string[] = [];
      const ev: string[] = [];
      for (const c of ok)
        for (const e of c.processed) {
          sk.push(c.studentKey);
          tp.push(c.topicId);
          ev.push(e);
        }
      if (ev.length > 0)
        await d.runPrepared(
          `INSERT OR IGNORE INTO learner_state_seen
           SELECT DISTINCT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::VARCHAR[])`,
          [listValue(sk), listValue(tp), listValue(ev)],
        );
      return out;
    });
  }

  async all(): Promise<KeyStateEntry[]> {
    const rows = await this.duck.all<DuckStateRow>(DUCK_SELECT);
    return rows.map((r) => ({
      studentKey: r.student_key,
      topicId: r.topic_id,
      rev: r.rev === null ? 0 : Number(r.rev),
      state: stateFromDuck(r),
    }));
  }

  async close(): Promise<void> {}
}

/**
 * The hot cache of GET /mastery bodies (JSON strings by student_key), bounded in bytes, with the
 * concurrency rules the server needs once reads no longer queue behind writes:
 *
 * - A body computed by a read that overlapped an invalidation of its key (or a clear) is returned to
 *   that caller but never cached: it may predate the update. Other keys' invalidations do not
 *   affect it (a per-key version, tracked only while a read of the key is in flight).
 * - Concurrent misses of one key share one computation (single flight), as long as no invalidation
 *   came in between; a read that starts after an invalidation computes afresh.
 * - Entries expire after `ttlMs` (short when other processes write the scores and their
 *   invalidations are not heard, long while they are: see setTtlMs); LRU eviction keeps the total of body sizes <= `maxBytes`.
 * - With `groupOf`, invalidateGroups drops every key of a group (e.g. all of a student's history bodies, keyed by
 *   student and topic, on a write of that student) with the same rules as invalidate: the group's cached bodies
 *   go, and its reads in flight do not cache what they computed.
 */
export interface BodyCacheOptions<V = string> {
  /** Upper bound of the sum of cached body sizes (bytesOf of each body). */
  maxBytes: number;
  /**
   * Size of a body in bytes; default: UTF-8 bytes of a string body. Required for any other body type
   * (e.g. a pre-encoded Buffer with its ETag).
   */
  bytesOf?: (body: V) => number;
  /** Most entries (default: unbounded; the byte bound applies either way). */
  maxEntries?: number;
  /** How long a body may be served (ms); default: until invalidated. */
  ttlMs?: number;
  now?: () => number;
  /**
   * The group of a key (invalidateGroups drops a whole group); without it invalidateGroups is an error. The
   * cache keeps the keys of each group that are cached or being read, so a group's invalidation costs its size.
   */
  groupOf?: (key: string) => string;
}

interface Entry<V> {
  body: V;
  bytes: number;
  at: number;
}

interface Flight<V> {
  /** Bumped by each invalidation of the key while the flight runs. */
  version: number;
  /** The computation started at `startedVersion`, shared by callers arriving before any invalidation. */
  promise: Promise<V> | null;
  startedVersion: number;
  /** Reads of this key in flight (the record is dropped at 0). */
  readers: number;
}

const utf8Bytes = (body: unknown): number => {
  if (typeof body !== "string")
    throw new Error("body cache: give bytesOf for bodies that are not strings (e.g. (b) => b.length)");
  return Buffer.byteLength(body, "utf8");
};

export class BodyCache<V = string> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly flights = new Map<string, Flight<V>>();
  private readonly bytesOf: (body: V) => number;
  private bytes = 0;
  /** Bumped by clear(): no read that started before it may store its body. */
  private epoch = 0;
  readonly maxBytes: number;
  private readonly maxEntries: number;
  private ttl: number;
  private readonly now: () => number;
  private readonly groupOf: ((key: string) => string) | undefined;
  /** With groupOf: the keys of each group that are cached or have reads in flight. */
  private readonly members = new Map<string, Set<string>>();
  /** Counters for /metrics and tests. */
  readonly stats = { hits: 0, misses: 0, shared: 0, discarded: 0, evicted: 0 };

  constructor(opts: BodyCacheOptions<V>) {
    if (!Number.isFinite(opts.maxBytes) || opts.maxBytes < 0)
      throw new Error(`body cache: maxBytes must be a number >= 0 (got ${opts.maxBytes}); e.g. 67108864`);
    this.maxBytes = opts.maxBytes;
    this.maxEntries = opts.maxEntries ?? Number.POSITIVE_INFINITY;
    this.ttl = opts.ttlMs ?? Number.POSITIVE_INFINITY;
    this.now = opts.now ?? Date.now;
    this.bytesOf = opts.bytesOf ?? utf8Bytes;
    this.groupOf = opts.groupOf;
  }

  /** How long a body may be served now (ms). */
  get ttlMs(): number {
    return this.ttl;
  }

  /**
   * Changes how long bodies may be served, cached ones included (their age is measured from when
   * they were stored): e.g. long while cross-process invalidation is heard, short while it is not.
   */
  setTtlMs(ms: number): void {
    if (!(ms >= 0)) throw new Error(`body cache: ttlMs must be >= 0 (got ${ms})`);
    this.ttl = ms;
  }

  /** Cached bytes now (always <= maxBytes). */
  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  /** Groups (groupOf) with a key cached or being read (what invalidateGroups has to look through). */
  get groupsTracked(): number {
    return this.members.size;
  }

  /** The fresh cached body, or undefined. A hit moves the entry to the most recently used end. */
  peek(key: string): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (this.now() - e.at > this.ttl) {
      this.remove(key);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.body;
  }

  /**
   * The cached body of `key`, or the result of `compute()` (shared with concurrent callers of the
   * same key), cached unless an invalidation of the key or a clear() happened while it ran.
   */
  async get(key: string, compute: () => Promise<V>): Promise<V> {
    const hit = this.peek(key);
    if (hit !== undefined) {
      this.stats.hits++;
      return hit;
    }
    let f = this.flights.get(key);
    if (f !== undefined && f.promise !== null && f.startedVersion === f.version) {
      this.stats.shared++;
      f.readers++;
      try {
        return await f.promise;
      } finally {
        this.leave(key, f);
      }
    }
    this.stats.misses++;
    if (f === undefined) {
      f = { version: 0, promise: null, startedVersion: 0, readers: 0 };
      this.flights.set(key, f);
      this.link(key);
    }
    const flight = f;
    flight.readers++;
    const version = flight.version;
    const epoch = this.epoch;
    const promise = compute();
    flight.promise = promise;
    flight.startedVersion = version;
    try {
      const body = await promise;
      if (flight.version === version && this.epoch === epoch) this.store(key, body);
      else this.stats.discarded++;
      return body;
    } finally {
      if (flight.promise === promise) flight.promise = null;
      this.leave(key, flight);
    }
  }

  /** Drops the keys' bodies; reads of them in flight will not cache what they computed. */
  invalidate(keys: Iterable<string>): void {
    for (const k of keys) {
      this.remove(k);
      const f = this.flights.get(k);
      if (f !== undefined) f.version++;
    }
  }

  /**
   * Drops the bodies of every key of the groups (groupOf); reads of them in flight will not cache what they
   * computed. A read that starts afterwards computes afresh.
   */
  invalidateGroups(groups: Iterable<string>): void {
    if (this.groupOf === undefined)
      throw new Error("body cache: invalidateGroups needs the groupOf option (the group of a key)");
    for (const g of groups) {
      const keys = this.members.get(g);
      if (keys !== undefined) this.invalidate([...keys]);
    }
  }

  /** Drops every body; no read in flight will cache its result. */
  clear(): void {
    this.epoch++;
    this.entries.clear();
    this.bytes = 0;
    for (const f of this.flights.values()) f.version++;
    // Only the keys being read stay members of their groups.
    for (const [g, keys] of this.members) {
      for (const k of keys) if (!this.flights.has(k)) keys.delete(k);
      if (keys.size === 0) this.members.delete(g);
    }
  }

  private leave(key: string, f: Flight<V>): void {
    f.readers--;
    if (f.readers === 0 && this.flights.get(key) === f) {
      this.flights.delete(key);
      this.unlink(key);
    }
  }

  /** Records `key` in its group (groupOf), once it is cached or being read. */
  private link(key: string): void {
    if (this.groupOf === undefined) return;
    const g = this.groupOf(key);
    const keys = this.members.get(g);
    if (keys === undefined) this.members.set(g, new Set([key]));
    else keys.add(key);
  }

  /** Drops `key` from its group once it is neither cached nor being read. */
  private unlink(key: string): void {
    if (this.groupOf === undefined || this.entries.has(key) || this.flights.has(key)) return;
    const g = this.groupOf(key);
    const keys = this.members.get(g);
    if (keys === undefined) return;
    keys.delete(key);
    if (keys.size === 0) this.members.delete(g);
  }

  private store(key: string, body: V): void {
    const n = this.bytesOf(body);
    this.remove(key);
    if (n > this.maxBytes) return;
    this.entries.set(key, { body, bytes: n, at: this.now() });
    this.bytes += n;
    this.link(key);
    while (this.bytes > this.maxBytes || this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.remove(oldest.value);
      this.stats.evicted++;
    }
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    this.entries.delete(key);
    this.bytes -= e.bytes;
    this.unlink(key);
  }
}

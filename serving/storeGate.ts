/**
 * Serializes every use of the embedded store by the server. DuckStore holds one connection, and
 * the ingest and update jobs use transactions and temp tables with fixed names, so two requests
 * must never interleave their statements. Reads are mostly served from the hot cache, so one queue
 * costs little; a server on PostgreSQL would use a pool instead.
 */
export class StoreGate {
  private tail: Promise<unknown> = Promise.resolve();
  private depth = 0;

  run<T>(fn: () => Promise<T>): Promise<T> {
    this.depth++;
    const next = this.tail.then(fn, fn);
    this.tail = next.then(
      () => {
        this.depth--;
      },
      () => {
        this.depth--;
      },
    );
    return next;
  }

  /** Requests waiting or running. */
  get pending(): number {
    return this.depth;
  }
}

/** A small LRU map (Map keeps insertion order; a hit re-inserts the entry at the end). */
export class LruCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly capacity: number) {}

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

import { BACKEND_LABEL, type BackendName, faultDetail, unavailableBackend } from "../storage/unavailable.ts";
import type { BackendProbe } from "./streamStores.ts";

/**
 * Knows which backends are down, finds out when they are back, and says so once per change.
 *
 * The stream worker and the API server share it: when a store call fails as unavailable
 * (storage/unavailable.ts), the caller reports it (`failed(err)`); the monitor marks the backend
 * down, probes it with exponential backoff until a probe succeeds, and marks it up again. The
 * worker waits on `whenUp()` (with its bus paused); the server answers 503 + Retry-After while
 * `down()` is non-empty and reports every backend in /readyz.
 */

/** Exponential backoff with "equal jitter": half fixed, half random, capped. Pure given `random`. */
export function backoffMs(
  attempt: number,
  opts: { baseMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const exp = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, Math.min(attempt, 30)));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

export interface BackendStatus {
  backend: BackendName;
  status: "up" | "down";
  /** Latency of the last probe (ms), null before the first. */
  latencyMs: number | null;
  /** Why it is down (driver message, URL passwords removed). */
  error?: string;
  /** Since when (ISO time) it is in this status. */
  since: string;
}

export type BackendEvent =
  | { state: "down"; backend: BackendName; detail: string }
  | { state: "up"; backend: BackendName; downMs: number };

export interface BackendMonitorOptions {
  probes: readonly BackendProbe[];
  /** Probe backoff while a backend is down (default 100 ms doubling to 2 s). */
  backoff?: { baseMs: number; maxMs: number };
  /** A probe slower than this counts as failed (default 1000 ms; a probe's own timeoutMs wins). */
  probeTimeoutMs?: number;
  /** Each change of state, once (for the process log). */
  onChange?: (e: BackendEvent) => void;
  random?: () => number;
}

interface Entry {
  probe: BackendProbe;
  status: BackendStatus;
  /** The running probe loop while down. */
  recovering: Promise<void> | null;
  downAt: number;
  nextProbeAt: number;
}

export class BackendMonitor {
  private readonly entries = new Map<BackendName, Entry>();
  private readonly backoff: { baseMs: number; maxMs: number };
  private readonly probeTimeoutMs: number;
  private closed = false;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly opts: BackendMonitorOptions) {
    this.backoff = opts.backoff ?? { baseMs: 100, maxMs: 2000 };
    this.probeTimeoutMs = opts.probeTimeoutMs ?? 1000;
    const now = new Date().toISOString();
    for (const p of opts.probes)
      this.entries.set(p.backend, {
        probe: p,
        status: { backend: p.backend, status: "up", latencyMs: null, since: now },
        recovering: null,
        downAt: 0,
        nextProbeAt: 0,
      });
  }

  /** The backends currently known to be down. */
  down(): BackendName[] {
    return [...this.entries.values()].filter((e) => e.status.status === "down").map((e) => e.probe.backend);
  }

  /** Whether any backend is known to be down (down() without building the list: asked on every request). */
  anyDown(): boolean {
    for (const e of this.entries.values()) if (e.status.status === "down") return true;
    return false;
  }

  /** Seconds a client should wait before retrying (the next probe, at least 1 s). */
  retryAfterSeconds(): number {
    const next = Math.max(0, ...[...this.entries.values()].map((e) => e.nextProbeAt - Date.now()));
    return Math.max(1, Math.ceil(next / 1000));
  }

  /**
   * A store call failed as unavailable: marks the backend it names down (or, when the error does
   * not say, every backend whose probe fails now) and starts probing it until it answers.
   */
  failed(err: unknown): void {
    if (this.closed) return;
    const named = unavailableBackend(err);
    if (named !== undefined && this.entries.has(named)) {
      this.markDown(this.entries.get(named)!, faultDetail(err));
      return;
    }
    // Unnamed: find out which one by probing them all.
    for (const e of this.entries.values())
      void this.probeOnce(e).then((ok) => {
        if (!ok) this.markDown(e, e.status.error ?? faultDetail(err));
      });
  }

  /** Resolves once no backend is down (at once if none is). */
  whenUp(): Promise<void> {
    if (this.down().length === 0 || this.closed) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** Probes every backend now (in parallel, each bounded by the probe timeout) and returns their status. */
  async check(): Promise<BackendStatus[]> {
    const list = [...this.entries.values()];
    await Promise.all(
      list.map(async (e) => {
        const ok = await this.probeOnce(e);
        if (!ok) this.markDown(e, e.status.error ?? "probe failed");
        else if (e.status.status === "down" && e.recovering === null) this.markUp(e);
      }),
    );
    return list.map((e) => ({ ...e.status }));
  }

  /** Status as last known, without probing. */
  snapshot(): BackendStatus[] {
    return [...this.entries.values()].map((e) => ({ ...e.status }));
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
  }

  private async probeOnce(e: Entry): Promise<boolean> {
    const t0 = performance.now();
    const timeoutMs = e.probe.timeoutMs ?? this.probeTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        e.probe.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      e.status.latencyMs = Math.round((performance.now() - t0) * 100) / 100;
      return true;
    } catch (err) {
      e.status.latencyMs = Math.round((performance.now() - t0) * 100) / 100;
      e.status.error = faultDetail(err);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private markDown(e: Entry, detail: string): void {
    if (this.closed) return;
    e.status.error = detail;
    if (e.status.status === "down") return;
    e.status = { ...e.status, status: "down", error: detail, since: new Date().toISOString() };
    e.downAt = Date.now();
    this.opts.onChange?.({ state: "down", backend: e.probe.backend, detail });
    e.recovering = this.recover(e).finally(() => {
      e.recovering = null;
    });
  }

  private markUp(e: Entry): void {
    const { error: _gone, ...rest } = e.status;
    e.status = { ...rest, status: "up", since: new Date().toISOString() };
    e.nextProbeAt = 0;
    this.opts.onChange?.({ state: "up", backend: e.probe.backend, downMs: Date.now() - e.downAt });
    if (this.down().length === 0) for (const w of this.waiters.splice(0)) w();
  }

  private async recover(e: Entry): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      const wait = backoffMs(attempt, this.backoff, this.opts.random);
      e.nextProbeAt = Date.now() + wait;
      await new Promise((r) => setTimeout(r, wait).unref?.());
      if (this.closed) return;
      if (await this.probeOnce(e)) {
        this.markUp(e);
        return;
      }
    }
  }
}

/** "PostgreSQL, Redis" for log lines and 503 bodies. */
export function backendList(names: readonly BackendName[]): string {
  return names.map((n) => BACKEND_LABEL[n]).join(", ");
}

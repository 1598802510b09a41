import { connect, type Socket } from "node:net";

/**
 * A paced (open-loop) HTTP/1.1 load generator on raw sockets: requests are due at fixed times (i / rate
 * seconds after the start) whatever the server does, and each latency is measured from the time the
 * request was DUE, not from when a connection became free, so queueing in front of a slow server is
 * counted (no coordinated omission). At most `connections` requests are in flight (keep-alive sockets,
 * one request at a time each); a due request with every socket busy waits in a FIFO, its clock running.
 *
 * Why not autocannon's overallRate: on 2 shared cores autocannon measured itself. A bare Express endpoint
 * at 1,000 req/s showed p99 421-677 ms under autocannon against ~32 ms with this generator
 * (bench/rateGen.bench.ts compares the two on bare Express; that figure is this generator's own error).
 * It does little per request: the request bytes are built once per request, the response is parsed only
 * as far as its status and length.
 */
export interface PacedRequest {
  method: "GET" | "POST";
  path: string;
  /** A JSON body (POST). */
  body?: string;
}

export interface PacedOptions {
  port: number;
  host?: string;
  /** Requests per second, due at even intervals. */
  rate: number;
  durationS: number;
  /** Most requests in flight (one per keep-alive socket). */
  connections: number;
  /** The next request to send (called when it is due). */
  next: () => PacedRequest;
  /** Sent with every request, e.g. { authorization: "Bearer ..." }. */
  headers?: Record<string, string>;
  /** A request not answered within this is a timeout (default 10 s). */
  timeoutMs?: number;
  /**
   * A keep-alive socket idle longer than this is closed instead of reused (default 4,000 ms), as clients
   * that honour the server's `Keep-Alive: timeout=5` do (undici keeps 1 s of margin). Node's server closes a
   * socket idle for keepAliveTimeout (5 s) + 1 s, and a request written at that instant fails with the
   * socket closed under it; reusing the least recently used sockets first would meet that race now and then.
   */
  maxIdleMs?: number;
  /**
   * Per-request timing (default off): each request carries `x-bench-id: <i>` (i: its index in due order)
   * and the result's `trace` holds its due, write and answer times on the machine's monotonic clock
   * (monoMs), for joining with the server's own times of the same ids.
   */
  trace?: boolean;
  /**
   * Also the latency quantiles of the requests due from this many seconds after the start (the result's
   * `steady`): the run without its first seconds, where a server that starts the run with cold caches falls
   * behind and catches up. Absent: not computed.
   */
  steadyFromS?: number;
}

/** Per request i (index in due order), ms on the monotonic clock (monoMs); NaN: never written / answered. */
export interface PacedTrace {
  due: Float64Array;
  /** When the generator wrote the request to its socket (after waiting for a free one). */
  write: Float64Array;
  /** When the generator had read the answer's last byte. */
  done: Float64Array;
}

/**
 * This process's performance.now() on the machine's monotonic clock (CLOCK_MONOTONIC, ms), which every
 * process on the machine shares: performance.now() is hrtime minus the process's own origin.
 */
export const monoOffsetMs = (): number => Number(process.hrtime.bigint()) / 1e6 - performance.now();

export interface PacedResult {
  /** Requests due in the run (rate x duration). */
  due: number;
  /** Answers received (any status). */
  completed: number;
  non2xx: number;
  /** Socket errors and closes with a request in flight. */
  errors: number;
  timeouts: number;
  /** Latency from due time to the last byte of the answer, ms. */
  latency: LatencyQuantiles;
  /** Keep-alive sockets closed by this generator for idling past maxIdleMs (reopened when needed). */
  retiredIdle: number;
  /** Answers per second over the run (until the last answer). */
  achievedRate: number;
  /** How late the generator itself sent requests that had a free socket (ms, p99 / max): its own error. */
  sendLag: { p99: number; max: number };
  /** With `trace`: each request's times. */
  trace?: PacedTrace;
  /** With `steadyFromS`: the latency of the requests due from then on (ms), and how many there were. */
  steady?: { fromS: number; n: number } & LatencyQuantiles;
}

interface InFlight {
  id: number;
  dueMs: number;
  /** With a trace: when the bytes were handed to the socket (performance.now()). */
  writeMs?: number;
  done: (status: number | null) => void;
}

const quantile = (sorted: Float64Array, q: number): number =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);

/** p50 / p90 / p99 / max of ascending latencies (ms; NaN when empty). */
export type LatencyQuantiles = { p50: number; p90: number; p99: number; max: number };

const latencyQuantiles = (sorted: Float64Array): LatencyQuantiles => ({
  p50: quantile(sorted, 0.5),
  p90: quantile(sorted, 0.9),
  p99: quantile(sorted, 0.99),
  max: sorted.length === 0 ? Number.NaN : (sorted[sorted.length - 1] ?? 0),
});

/**
 * The latency quantiles (ms) of the first `n` answers whose request was due at or after `fromS` seconds into the
 * run (`dueAfterMs[i]`: answer i's due time after the start, ms).
 */
export function steadyLatency(
  latencies: Float64Array,
  dueAfterMs: Float64Array,
  n: number,
  fromS: number,
): { fromS: number; n: number } & LatencyQuantiles {
  const kept: number[] = [];
  for (let i = 0; i < n; i++) if (dueAfterMs[i]! >= fromS * 1000) kept.push(latencies[i]!);
  const sorted = Float64Array.from(kept).sort();
  return { fromS, n: sorted.length, ...latencyQuantiles(sorted) };
}

/** One keep-alive connection that sends a request and parses one answer at a time. */
class Conn {
  busy: InFlight | null = null;
  /** When this socket last became free (performance.now()). */
  freeSince = 0;
  private buf: Buffer | null = null;
  private headerEnd = -1;
  private need = -1;
  private chunked = false;
  private status = 0;
  private timer: NodeJS.Timeout | null = null;
  dead = false;
  connected = false;

  constructor(
    readonly socket: Socket,
    private readonly timeoutMs: number,
    private readonly onFree: (c: Conn) => void,
    private readonly onDead: (c: Conn, timedOut: boolean) => void,
  ) {
    socket.setNoDelay(true);
    socket.once("connect", () => {
      this.connected = true;
    });
    socket.on("data", (chunk: Buffer) => this.data(chunk));
    const fail = () => this.die(false);
    socket.on("error", fail);
    socket.on("close", fail);
  }

  send(bytes: Buffer, f: InFlight): void {
    this.busy = f;
    this.buf = null;
    this.headerEnd = -1;
    this.need = -1;
    this.timer = setTimeout(() => this.die(true), this.timeoutMs);
    this.socket.write(bytes);
  }

  /** Closes an idle socket on purpose (no request in flight; onDead is not told). */
  retire(): void {
    if (this.dead) return;
    this.dead = true;
    this.socket.destroy();
  }

  private die(timedOut: boolean): void {
    if (this.dead) return;
    this.dead = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket.destroy();
    this.onDead(this, timedOut);
  }

  private data(chunk: Buffer): void {
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    const b = this.buf;
    if (this.headerEnd < 0) {
      const end = b.indexOf("\r\n\r\n");
      if (end < 0) return;
      this.headerEnd = end + 4;
      this.status = Number(b.toString("latin1", 9, 12));
      const head = b.toString("latin1", 0, end).toLowerCase();
      const m = /\r\ncontent-length:\s*(\d+)/.exec(head);
      this.chunked = m === null && head.includes("transfer-encoding: chunked");
      this.need = m === null ? 0 : Number(m[1]);
    }
    const complete = this.chunked
      ? b.length >= 5 && b.toString("latin1", b.length - 5) === "0\r\n\r\n"
      : b.length - this.headerEnd >= this.need;
    if (!complete) return;
    if (this.timer !== null) clearTimeout(this.timer);
    const f = this.busy;
    this.busy = null;
    this.buf = null;
    f?.done(this.status);
    this.onFree(this);
  }
}

/** Runs the paced load and resolves when every due request is answered, failed or timed out. */
export function pacedLoad(opts: PacedOptions): Promise<PacedResult> {
  const host = opts.host ?? "127.0.0.1";
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (!(opts.rate > 0 && opts.durationS > 0 && opts.connections >= 1))
    throw new RangeError(
      `pacedLoad needs rate > 0, durationS > 0 and connections >= 1 (got ${opts.rate}, ${opts.durationS}, ${opts.connections})`,
    );
  const due = Math.round(opts.rate * opts.durationS);
  const intervalMs = 1000 / opts.rate;
  const fixed = Object.entries({ host: `${host}:${opts.port}`, connection: "keep-alive", ...opts.headers })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  const encode = (r: PacedRequest, id: number): Buffer => {
    const body = r.body === undefined ? "" : r.body;
    const extra =
      (r.body === undefined
        ? ""
        : `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`) +
      (opts.trace === true ? `x-bench-id: ${id}\r\n` : "");
    return Buffer.from(`${r.method} ${r.path} HTTP/1.1\r\n${fixed}${extra}\r\n${body}`);
  };
  const trace: PacedTrace | undefined =
    opts.trace === true
      ? { due: new Float64Array(due), write: new Float64Array(due), done: new Float64Array(due) }
      : undefined;
  trace?.write.fill(Number.NaN);
  trace?.done.fill(Number.NaN);
  const mono = monoOffsetMs();

  return new Promise((resolve) => {
    const latencies = new Float64Array(due);
    // Each answered request's due time after the start (ms), in answer order, for `steady`.
    const dueAfter = opts.steadyFromS === undefined ? null : new Float64Array(due);
    const lags: number[] = [];
    let nLat = 0;
    let sent = 0;
    let finished = 0;
    let non2xx = 0;
    let errors = 0;
    let timeouts = 0;
    let lastAnswer = 0;
    const backlog: { bytes: Buffer; dueMs: number; id: number }[] = [];
    const idle: Conn[] = [];
    let open = 0;
    const maxIdleMs = opts.maxIdleMs ?? 4000;
    let retiredIdle = 0;
    // The most recently freed idle socket that has not idled past maxIdleMs; older ones are closed (they sit
    // below it in the stack, so all of them have idled longer).
    const takeIdle = (now: number): Conn | undefined => {
      const c = idle.pop();
      if (c === undefined || now - c.freeSince <= maxIdleMs) return c;
      const stale = [c, ...idle.splice(0)];
      for (const old of stale) {
        retiredIdle++;
        open--;
        old.retire();
      }
      return undefined;
    };
    const t0 = performance.now();

    const finish = () => {
      if (finished < due) return;
      clearTimeout(tick);
      for (const c of idle) c.socket.destroy();
      if (trace !== undefined) for (let i = 0; i < due; i++) trace.due[i] = t0 + i * intervalMs + mono;
      const sorted = latencies.slice(0, nLat).sort();
      const lagSorted = Float64Array.from(lags).sort();
      resolve({
        due,
        completed: nLat,
        non2xx,
        errors,
        timeouts,
        retiredIdle,
        latency: latencyQuantiles(sorted),
        achievedRate: (1000 * nLat) / Math.max(1, lastAnswer - t0),
        sendLag: {
          p99: quantile(lagSorted, 0.99),
          max: lagSorted.length === 0 ? 0 : (lagSorted.at(-1) ?? 0),
        },
        ...(trace !== undefined ? { trace } : {}),
        ...(dueAfter !== null && opts.steadyFromS !== undefined
          ? { steady: steadyLatency(latencies, dueAfter, nLat, opts.steadyFromS) }
          : {}),
      });
    };

    const dispatch = (c: Conn) => {
      const job = backlog.shift();
      if (job === undefined) {
        c.freeSince = performance.now();
        idle.push(c);
        return;
      }
      const dueMs = job.dueMs;
      const f: InFlight = {
        id: job.id,
        dueMs,
        done: (status) => {
          finished++;
          const now = performance.now();
          lastAnswer = now;
          if (trace !== undefined && status !== null) {
            trace.write[f.id] = (f.writeMs ?? Number.NaN) + mono;
            trace.done[f.id] = now + mono;
          }
          if (status !== null) {
            if (dueAfter !== null) dueAfter[nLat] = dueMs - t0;
            latencies[nLat++] = now - dueMs;
            if (status < 200 || status >= 300) non2xx++;
          }
          finish();
        },
      };
      // Traced: the write time (Conn.send writes right after setting its timer); untraced, not read.
      if (trace !== undefined) f.writeMs = performance.now();
      c.send(job.bytes, f);
    };
    const onDead = (c: Conn, timedOut: boolean) => {
      open--;
      const i = idle.indexOf(c);
      if (i >= 0) idle.splice(i, 1);
      if (c.busy !== null) {
        if (timedOut) timeouts++;
        else errors++;
        const f = c.busy;
        c.busy = null;
        f.done(null);
      } else if (!c.connected && backlog.length > 0) {
        // The server refuses connections: fail a waiting request per failed connect (no endless retry).
        backlog.shift();
        errors++;
        finished++;
        finish();
      }
      if (backlog.length > 0) grow();
    };
    const grow = () => {
      if (open >= opts.connections) return;
      open++;
      const socket = connect(opts.port, host);
      const c = new Conn(socket, timeoutMs, dispatch, onDead);
      socket.once("connect", () => dispatch(c));
    };

    let tick: NodeJS.Timeout;
    const pump = () => {
      const now = performance.now();
      const upTo = Math.min(due, Math.floor((now - t0) / intervalMs) + 1);
      while (sent < upTo) {
        const dueMs = t0 + sent * intervalMs;
        const id = sent;
        sent++;
        const bytes = encode(opts.next(), id);
        const c = takeIdle(now);
        if (c !== undefined) {
          lags.push(performance.now() - dueMs);
          backlog.push({ bytes, dueMs, id });
          dispatch(c);
        } else {
          backlog.push({ bytes, dueMs, id });
          grow();
        }
      }
      if (sent < due) {
        const wait = t0 + sent * intervalMs - performance.now();
        tick = setTimeout(pump, Math.max(0, Math.min(wait, 5)));
      }
    };
    // Open the connections first (not counted: a client keeps its pool open).
    for (let i = 0; i < Math.min(opts.connections, 8); i++) grow();
    tick = setTimeout(pump, 0);
  });
}

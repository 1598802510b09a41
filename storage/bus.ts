import {
  AckPolicy,
  connect,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  nanos,
  RetentionPolicy,
  StorageType,
} from "nats";
import { natsTlsOptions } from "./tls.ts";
import { BackendUnavailableError, faultDetail, isUnavailable, redactUrl } from "./unavailable.ts";

/**
 * The event bus: publish events, consume them in batches with explicit acknowledgement.
 * At-least-once: a message that is not acknowledged (nak, handler error, consumer crash, ack
 * timeout) is delivered again, so consumers must be idempotent (serving/updater.ts is, by event_id).
 *
 * Two implementations: an in-process queue (the embedded default, for one process) and NATS
 * JetStream (stream MASTERY_EVENTS on subjects "mastery.events.>", one durable pull consumer shared
 * by every worker process).
 */

export interface BusMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** 1 on the first delivery, then 2, 3, ... */
  readonly deliveryCount: number;
  ack(): void;
  /** Deliver again (after `delayMs`). */
  nak(delayMs?: number): void;
  /** Never deliver again (the consumer dead-lettered it). */
  term(): void;
  /**
   * Still working on it: restarts the ack-wait timer so the message is not redelivered (and its
   * delivery count not raised) while the consumer waits for its stores to come back.
   */
  working(): void;
}

export interface ConsumeOptions {
  /** Largest batch handed to `handler` (default 500). */
  maxBatch?: number;
  /**
   * Processes a batch and settles each message (ack/nak/term). Messages it leaves unsettled are
   * nak'ed; if it throws, every unsettled message is nak'ed.
   */
  handler: (batch: BusMessage[]) => Promise<void>;
  /**
   * Batches handled at once (default 1). 2 lets a handler that pipelines its work internally
   * (serving/updater.ts does) take the next batch while the previous one finishes.
   */
  concurrency?: number;
  /**
   * Awaited before a lane takes its next batch (with concurrency > 1): lets the handler say when it
   * can start on one, so a batch is formed as late as possible and holds everything queued by then.
   */
  beforeTake?: () => Promise<void>;
  /** Called when `handler` throws (the loop goes on). */
  onError?: (err: unknown) => void;
}

export interface Subscription {
  /** Stops taking messages, waits for the batch in progress, nak's what was buffered. */
  stop(): Promise<void>;
  /**
   * Stops pulling new messages (a worker whose stores are down must not burn deliveries); messages
   * already delivered stay unsettled and are kept alive (NATS: `working()` every third of ack_wait,
   * for every unsettled message, paused or not) until the handler settles them.
   */
  pause(): Promise<void>;
  /** Pulls again after `pause()`. */
  resume(): Promise<void>;
  /** Messages delivered to this consumer and not yet settled (queued or in a handler). */
  readonly unsettled: number;
}

export interface EventBus {
  /** Deliveries after which a consumer should dead-letter a message it still cannot process. */
  readonly maxDeliver: number;
  /** The subject of an event type: `<prefix>.<type>`. */
  subjectFor(type: string): string;
  /** Publishes one message; `msgId` lets the bus drop a re-publish of the same id (JetStream does, within its window). */
  publish(subject: string, data: Uint8Array, msgId?: string): Promise<void>;
  consume(opts: ConsumeOptions): Promise<Subscription>;
  close(): Promise<void>;
}

export class BusError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "BusError";
  }
}

type Settleable = { ack(): void; nak(d?: number): void; term(): void; working(): void };

/** Settles a message once: later calls are ignored, so the loop can nak whatever the handler left. */
class Settled<M extends Settleable> implements BusMessage {
  settled = false;
  /** Called once when the message is settled (the loop forgets it). */
  onSettle: ((m: Settled<M>) => void) | undefined;
  constructor(
    readonly subject: string,
    readonly data: Uint8Array,
    readonly deliveryCount: number,
    readonly inner: M,
  ) {}
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.onSettle?.(this);
    return true;
  }
  ack(): void {
    if (this.settle()) this.inner.ack();
  }
  nak(delayMs?: number): void {
    if (this.settle()) this.inner.nak(delayMs);
  }
  term(): void {
    if (this.settle()) this.inner.term();
  }
  working(): void {
    if (!this.settled) this.inner.working();
  }
}

/**
 * The batching loop both buses share: messages arrive one by one into `queue`; the loop hands
 * whatever is queued (up to maxBatch) to the handler, so batches grow with load and a lone message
 * is not held back waiting for company.
 */
class BatchLoop<M extends Settleable> {
  private readonly queue: Settled<M>[] = [];
  /** Delivered and not settled: queued or handed to the handler. */
  private readonly open = new Set<Settled<M>>();
  private stopped = false;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  readonly done: Promise<void>;

  constructor(private readonly opts: ConsumeOptions) {
    const lanes = Array.from({ length: Math.max(1, opts.concurrency ?? 1) }, () => this.run());
    this.done = Promise.all(lanes).then(() => undefined);
  }

  push(m: Settled<M>): void {
    if (this.stopped) {
      m.nak();
      return;
    }
    m.onSettle = (x) => this.open.delete(x);
    this.open.add(m);
    this.queue.push(m);
    this.wakeAll();
  }

  get unsettled(): number {
    return this.open.size;
  }

  /** Keeps every unsettled message alive (working()) every `ms` until stopHeartbeat(). */
  startHeartbeat(ms: number): void {
    if (this.heartbeat !== undefined) return;
    const beat = () => {
      for (const m of this.open) m.working();
    };
    beat();
    this.heartbeat = setInterval(beat, ms);
  }

  stopHeartbeat(): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private wakeAll(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private readonly waiters: (() => void)[] = [];

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeAll();
    await this.done;
    this.stopHeartbeat();
    for (const m of this.queue.splice(0)) m.nak();
  }

  private async run(): Promise<void> {
    const maxBatch = this.opts.maxBatch ?? 500;
    while (!this.stopped) {
      if (this.queue.length === 0) {
        await new Promise<void>((r) => {
          this.waiters.push(r);
        });
        continue;
      }
      if (this.opts.beforeTake !== undefined) {
        await this.opts.beforeTake();
        if (this.queue.length === 0) continue;
      }
      const batch = this.queue.splice(0, maxBatch);
      try {
        await this.opts.handler(batch);
      } catch (err) {
        this.opts.onError?.(err);
      }
      for (const m of batch) m.nak();
    }
  }
}

// ------------------------------------------------------------------------------------------------
// In-process

interface MemoryEntry {
  subject: string;
  data: Uint8Array;
  deliveries: number;
}

/** One process, one logical consumer group: every consume() shares the queue, like a durable consumer. */
export class MemoryBus implements EventBus {
  readonly maxDeliver: number;
  private readonly ready: MemoryEntry[] = [];
  private readonly loops: BatchLoop<Settleable>[] = [];
  private readonly paused = new Set<BatchLoop<Settleable>>();
  private readonly ids = new Set<string>();
  private next = 0;
  private timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(opts: { maxDeliver?: number; subjectPrefix?: string } = {}) {
    this.maxDeliver = opts.maxDeliver ?? 10;
    this.prefix = opts.subjectPrefix ?? "mastery.events";
  }

  private readonly prefix: string;

  subjectFor(type: string): string {
    return `${this.prefix}.${type}`;
  }

  async publish(subject: string, data: Uint8Array, msgId?: string): Promise<void> {
    if (msgId !== undefined) {
      if (this.ids.has(msgId)) return;
      this.ids.add(msgId);
    }
    this.ready.push({ subject, data, deliveries: 0 });
    this.dispatch();
  }

  async consume(opts: ConsumeOptions): Promise<Subscription> {
    const loop = new BatchLoop<Settleable>(opts);
    this.loops.push(loop);
    this.dispatch();
    return {
      stop: async () => {
        const i = this.loops.indexOf(loop);
        if (i >= 0) this.loops.splice(i, 1);
        this.paused.delete(loop);
        await loop.stop();
      },
      pause: async () => {
        this.paused.add(loop);
      },
      resume: async () => {
        this.paused.delete(loop);
        this.dispatch();
      },
      get unsettled() {
        return loop.unsettled;
      },
    };
  }

  private inFlight = 0;

  /** Messages waiting for delivery, delivered but not settled, and waiting out a nak delay. */
  backlogCount(): number {
    return this.ready.length + this.inFlight + this.timers.size;
  }

  private dispatch(): void {
    const active = this.loops.filter((l) => !this.paused.has(l));
    while (this.ready.length > 0 && active.length > 0) {
      const e = this.ready.shift()!;
      const loop = active[this.next++ % active.length]!;
      e.deliveries++;
      this.inFlight++;
      const settle = {
        ack: () => {
          this.inFlight--;
        },
        term: () => {
          this.inFlight--;
        },
        working: () => {},
        nak: (delayMs?: number) => {
          this.inFlight--;
          if (delayMs !== undefined && delayMs > 0) {
            const t = setTimeout(() => {
              this.timers.delete(t);
              this.ready.push(e);
              this.dispatch();
            }, delayMs);
            this.timers.add(t);
          } else {
            this.ready.push(e);
            queueMicrotask(() => this.dispatch());
          }
        },
      };
      loop.push(new Settled(e.subject, e.data, e.deliveries, settle));
    }
  }

  async close(): Promise<void> {
    for (const l of this.loops.splice(0)) await l.stop();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

// ------------------------------------------------------------------------------------------------
// NATS JetStream

export interface NatsBusOptions {
  /** e.g. nats://127.0.0.1:4222 (MASTERY_NATS_URL). */
  url: string;
  /** Stream name (default MASTERY_EVENTS). */
  stream?: string;
  /** Subjects are `<prefix>.<type>`; the stream holds `<prefix>.>` (default "mastery.events"). */
  subjectPrefix?: string;
  /** Durable consumer shared by the workers (default "mastery-worker"). */
  durable?: string;
  /** Redelivery after this long without an ack (default 10 s). */
  ackWaitMs?: number;
  /** See EventBus.maxDeliver (default 10). */
  maxDeliver?: number;
  /** Unacknowledged messages the consumer may have out at once, over all workers (default 20,000). */
  maxAckPending?: number;
  /** How long the stream keeps messages (default 7 days); the raw zone keeps them for good. */
  maxAgeMs?: number;
  /** Messages each worker keeps buffered (default 1,000). */
  prefetch?: number;
  /** Connection state changes (disconnected, reconnected), once each, for the process log. */
  onStatus?: (status: NatsStatus) => void;
}

/** A change of the NATS connection's state. */
export interface NatsStatus {
  state: "disconnected" | "reconnecting" | "reconnected";
  server: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export class NatsBus implements EventBus {
  readonly maxDeliver: number;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly stream: string,
    readonly durable: string,
    private readonly prefix: string,
    maxDeliver: number,
    private readonly prefetch: number,
    private readonly ackWaitMs: number,
  ) {
    this.maxDeliver = maxDeliver;
  }

  /** Connects and creates (or updates) the stream and the durable pull consumer. */
  static async open(opts: NatsBusOptions): Promise<NatsBus> {
    const stream = opts.stream ?? "MASTERY_EVENTS";
    const durable = opts.durable ?? "mastery-worker";
    const prefix = opts.subjectPrefix ?? "mastery.events";
    if (!NAME.test(stream) || !NAME.test(durable))
      throw new BusError(
        "NATS_NAME",
        `stream "${stream}" and consumer "${durable}" must be 1-64 letters, digits, _ or - (e.g. MASTERY_EVENTS)`,
      );
    if (!PREFIX.test(prefix))
      throw new BusError(
        "NATS_SUBJECT",
        `subject prefix "${prefix}" must be dot-separated tokens (e.g. mastery.events)`,
      );
    let nc: NatsConnection;
    try {
      // Reconnect forever (2 s apart, with jitter); publishes made while disconnected are buffered.
      nc = await connect({
        servers: opts.url,
        name: `mastery-${process.pid}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1000,
        reconnectJitter: 500,
        waitOnFirstConnect: false,
        ...natsTlsOptions(opts.url),
      });
    } catch (err) {
      throw new BusError(
        "NATS_CONNECT",
        `cannot connect to NATS at ${redactUrl(opts.url)}: ${faultDetail(err)}. Check MASTERY_NATS_URL (e.g. nats://127.0.0.1:4222) and that the server runs with JetStream (-js).`,
      );
    }
    const jsm = await nc.jetstreamManager();
    const maxDeliver = opts.maxDeliver ?? 10;
    const streamConfig = {
      name: stream,
      subjects: [`${prefix}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(opts.maxAgeMs ?? 7 * 24 * 3600 * 1000),
      // Re-publishes of one event id within this window are dropped by the server.
      duplicate_window: nanos(2 * 60 * 1000),
    };
    try {
      await jsm.streams.info(stream);
      await jsm.streams.update(stream, streamConfig);
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
      await jsm.streams.add(streamConfig);
    }
    const consumerConfig = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(opts.ackWaitMs ?? 10_000),
      // No server-side limit: a message past it would be skipped silently (neither applied nor
      // dead-lettered). The worker decides: it dead-letters a message that FAILS on its
      // maxDeliver-th delivery, and one that keeps coming back unsettled (a process crashing on it)
      // after 3 x maxDeliver deliveries.
      max_deliver: -1,
      max_ack_pending: opts.maxAckPending ?? 20_000,
      filter_subject: `${prefix}.>`,
    };
    try {
      await jsm.consumers.info(stream, durable);
      await jsm.consumers.update(stream, durable, consumerConfig);
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
      await jsm.consumers.add(stream, consumerConfig);
    }
    const bus = new NatsBus(
      nc,
      nc.jetstream(),
      jsm,
      stream,
      durable,
      prefix,
      maxDeliver,
      opts.prefetch ?? 1000,
      opts.ackWaitMs ?? 10_000,
    );
    bus.watchStatus(opts.onStatus);
    return bus;
  }

  subjectFor(type: string): string {
    return `${this.prefix}.${type}`;
  }

  private connected = true;

  /** Follows the connection's status; reports each change of state once. */
  private watchStatus(onStatus: ((s: NatsStatus) => void) | undefined): void {
    void (async () => {
      let last: NatsStatus["state"] | undefined;
      for await (const s of this.nc.status()) {
        const state =
          s.type === "disconnect"
            ? "disconnected"
            : s.type === "reconnecting"
              ? "reconnecting"
              : s.type === "reconnect"
                ? "reconnected"
                : undefined;
        if (state === undefined) continue;
        this.connected = state === "reconnected";
        if (state === last || (state === "reconnecting" && last === "disconnected")) continue;
        last = state;
        onStatus?.({ state, server: redactUrl(String(s.data)) });
      }
    })().catch(() => undefined);
  }

  /** Round trip to the server (for /readyz); throws BackendUnavailableError when it does not answer. */
  async ping(): Promise<void> {
    if (!this.connected || this.nc.isClosed())
      throw new BackendUnavailableError("nats", "not connected; reconnecting");
    try {
      await this.nc.rtt();
    } catch (err) {
      throw new BackendUnavailableError("nats", faultDetail(err), { cause: err });
    }
  }

  async publish(subject: string, data: Uint8Array, msgId?: string): Promise<void> {
    // While disconnected the client would buffer the publish and wait for the ack until its
    // timeout; refuse at once instead, so POST /events answers 503 quickly.
    if (!this.connected) throw new BackendUnavailableError("nats", "not connected; reconnecting");
    try {
      await this.js.publish(
        subject,
        data,
        msgId !== undefined ? { msgID: msgId, timeout: 2000 } : { timeout: 2000 },
      );
    } catch (err) {
      if (isUnavailable(err) || /timeout|503|no responders/i.test(faultDetail(err)))
        throw new BackendUnavailableError("nats", faultDetail(err), { cause: err });
      throw err;
    }
  }

  async consume(opts: ConsumeOptions): Promise<Subscription> {
    const consumer = await this.js.consumers.get(this.stream, this.durable);
    const loop = new BatchLoop<JsMsg>(opts);
    // Messages wait in the buffer (and in a slow batch) longer than ack_wait under load: keep every
    // unsettled one alive, so a delivery is never burned by waiting, only by a crash.
    loop.startHeartbeat(Math.max(100, Math.floor(this.ackWaitMs / 3)));
    const pull = () =>
      consumer.consume({
        max_messages: this.prefetch,
        callback: (m: JsMsg) => loop.push(new Settled(m.subject, m.data, m.info.deliveryCount, m)),
      });
    let messages: Awaited<ReturnType<typeof pull>> | null = await pull();
    return {
      stop: async () => {
        await messages?.close();
        messages = null;
        await loop.stop();
      },
      pause: async () => {
        const m = messages;
        messages = null;
        await m?.close();
      },
      resume: async () => {
        messages ??= await pull();
      },
      get unsettled() {
        return loop.unsettled;
      },
    };
  }

  /** Messages not yet delivered plus those delivered and not acknowledged. */
  async backlog(): Promise<{ pending: number; ackPending: number; redelivered: number }> {
    const info = await this.jsm.consumers.info(this.stream, this.durable);
    return { pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered };
  }

  /** Deletes the stream (and its consumer); tests clean up with this. */
  async destroy(): Promise<void> {
    await this.jsm.streams.delete(this.stream);
  }

  async close(): Promise<void> {
    await this.nc.drain();
  }
}

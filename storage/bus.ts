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

/** Settles a message once: later calls are ignored, so the loop can nak whatever the handler left. */
class Settled<M extends { ack(): void; nak(d?: number): void; term(): void }> implements BusMessage {
  settled = false;
  constructor(
    readonly subject: string,
    readonly data: Uint8Array,
    readonly deliveryCount: number,
    readonly inner: M,
  ) {}
  ack(): void {
    if (this.settled) return;
    this.settled = true;
    this.inner.ack();
  }
  nak(delayMs?: number): void {
    if (this.settled) return;
    this.settled = true;
    this.inner.nak(delayMs);
  }
  term(): void {
    if (this.settled) return;
    this.settled = true;
    this.inner.term();
  }
}

/**
 * The batching loop both buses share: messages arrive one by one into `queue`; the loop hands
 * whatever is queued (up to maxBatch) to the handler, so batches grow with load and a lone message
 * is not held back waiting for company.
 */
class BatchLoop<M extends { ack(): void; nak(d?: number): void; term(): void }> {
  private readonly queue: Settled<M>[] = [];
  private stopped = false;
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
    this.queue.push(m);
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private readonly waiters: (() => void)[] = [];

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeAll();
    await this.done;
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
  private readonly loops: BatchLoop<{ ack(): void; nak(d?: number): void; term(): void }>[] = [];
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
    const loop = new BatchLoop(opts);
    this.loops.push(loop);
    this.dispatch();
    return {
      stop: async () => {
        const i = this.loops.indexOf(loop);
        if (i >= 0) this.loops.splice(i, 1);
        await loop.stop();
      },
    };
  }

  private inFlight = 0;

  /** Messages waiting for delivery, delivered but not settled, and waiting out a nak delay. */
  backlogCount(): number {
    return this.ready.length + this.inFlight + this.timers.size;
  }

  private dispatch(): void {
    while (this.ready.length > 0 && this.loops.length > 0) {
      const e = this.ready.shift()!;
      const loop = this.loops[this.next++ % this.loops.length]!;
      e.deliveries++;
      this.inFlight++;
      const settle = {
        ack: () => {
          this.inFlight--;
        },
        term: () => {
          this.inFlight--;
        },
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
      nc = await connect({
        servers: opts.url,
        name: `mastery-${process.pid}`,
        maxReconnectAttempts: -1,
        ...natsTlsOptions(opts.url),
      });
    } catch (err) {
      throw new BusError(
        "NATS_CONNECT",
        `cannot connect to NATS at ${opts.url}: ${(err as Error).message}. Check MASTERY_NATS_URL (e.g. nats://127.0.0.1:4222) and that the server runs with JetStream (-js).`,
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
      // The worker dead-letters a message once it has been delivered more than maxDeliver times; the
      // server's own limit sits a little higher, as a backstop if no worker ever gets to settle it.
      max_deliver: maxDeliver + 3,
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
    return new NatsBus(nc, nc.jetstream(), jsm, stream, durable, prefix, maxDeliver, opts.prefetch ?? 1000);
  }

  subjectFor(type: string): string {
    return `${this.prefix}.${type}`;
  }

  async publish(subject: string, data: Uint8Array, msgId?: string): Promise<void> {
    await this.js.publish(subject, data, msgId !== undefined ? { msgID: msgId } : undefined);
  }

  async consume(opts: ConsumeOptions): Promise<Subscription> {
    const consumer = await this.js.consumers.get(this.stream, this.durable);
    const loop = new BatchLoop<JsMsg>(opts);
    const messages = await consumer.consume({
      max_messages: this.prefetch,
      callback: (m: JsMsg) => loop.push(new Settled(m.subject, m.data, m.info.deliveryCount, m)),
    });
    return {
      stop: async () => {
        await messages.close();
        await loop.stop();
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

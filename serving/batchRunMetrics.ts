/**
 * The scheduled jobs' freshness for monitoring: GET /metrics gauge
 * mastery_batch_last_success_timestamp_seconds{job} (unix seconds of the end of the newest successful
 * run in batch_runs, per job; absent for a job that never succeeded) and the /healthz field
 * lastBatchSuccess. Alert on `time() - mastery_batch_last_success_timestamp_seconds{job="batch"} > 26*3600`.
 * Read at most once per `maxAgeMs`; a failed read keeps the last value (liveness never fails on it).
 */
import { Gauge, type Registry } from "prom-client";
import { SCHEDULED_JOBS, type ScheduledJob } from "./scheduleConfig.ts";

export class BatchRunMetrics {
  readonly gauge: Gauge<"job">;
  private last: Partial<Record<ScheduledJob, Date>> = {};
  private readAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | null = null;

  constructor(
    registry: Registry,
    private readonly read: (job: ScheduledJob) => Promise<Date | null>,
    private readonly maxAgeMs = 5_000,
    private readonly now: () => number = Date.now,
  ) {
    const self = this;
    this.gauge = new Gauge({
      name: "mastery_batch_last_success_timestamp_seconds",
      help: "End time (unix seconds) of the newest successful scheduled run per job (batch, checks), from batch_runs",
      labelNames: ["job"] as const,
      registers: [registry],
      async collect() {
        await self.refresh();
        this.reset();
        for (const job of SCHEDULED_JOBS) {
          const d = self.last[job];
          if (d !== undefined) this.set({ job }, d.getTime() / 1000);
        }
      },
    });
  }

  /**
   * The newest successful run's end per job, refreshed when older than maxAgeMs; waits at most
   * `waitMs` for that (a store stuck behind a long job or an outage never holds up /healthz);
   * `waitMs` 0 answers from the last read and lets a due re-read run in the background.
   */
  async lastSuccess(waitMs = 250): Promise<Partial<Record<ScheduledJob, Date>>> {
    if (waitMs <= 0) {
      void this.refresh();
      return { ...this.last };
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.refresh(),
      new Promise<void>((r) => {
        timer = setTimeout(r, waitMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    return { ...this.last };
  }

  private refresh(): Promise<void> {
    if (this.now() - this.readAt < this.maxAgeMs) return Promise.resolve();
    this.inFlight ??= (async () => {
      try {
        const next: Partial<Record<ScheduledJob, Date>> = {};
        for (const job of SCHEDULED_JOBS) {
          const d = await this.read(job);
          if (d !== null) next[job] = d;
        }
        this.last = next;
        this.readAt = this.now();
      } catch {
        // Keep the last values: a store outage shows on /readyz, not as a lost batch time.
      } finally {
        this.inFlight = null;
      }
    })();
    return this.inFlight;
  }
}

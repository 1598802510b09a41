import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { DuckStore } from "./duckdb.ts";
import { BATCH_RUNS_DDL } from "./schema.ts";

/** The run records of `mastery schedule` (batch_runs, storage/schema.ts BATCH_RUNS_DDL). */

export type BatchRunStatus = "running" | "ok" | "failed";

export interface BatchRun {
  runId: string;
  job: string;
  startedAt: Date;
  endedAt: Date | null;
  status: BatchRunStatus;
  counts: Record<string, unknown> | null;
  error: string | null;
  host: string;
  pid: number;
}

type Raw = {
  run_id: string;
  job: string;
  started_ms: number;
  ended_ms: number | null;
  status: string;
  counts: string | null;
  error: string | null;
  host: string;
  pid: number;
};

const SELECT = `SELECT run_id, job, epoch_ms(started_at)::DOUBLE AS started_ms, epoch_ms(ended_at)::DOUBLE AS ended_ms,
  status, counts, error, host, pid FROM batch_runs`;

const fromRaw = (r: Raw): BatchRun => ({
  runId: r.run_id,
  job: r.job,
  startedAt: new Date(r.started_ms),
  endedAt: r.ended_ms === null ? null : new Date(r.ended_ms),
  status: r.status as BatchRunStatus,
  counts: r.counts === null ? null : (JSON.parse(r.counts) as Record<string, unknown>),
  error: r.error,
  host: r.host,
  pid: r.pid,
});

const us = (d: Date): bigint => BigInt(d.getTime()) * 1000n;

/** The run records of one DuckDB store. */
export class BatchRunStore {
  private constructor(private readonly store: DuckStore) {}

  static async open(store: DuckStore): Promise<BatchRunStore> {
    await store.run(BATCH_RUNS_DDL);
    return new BatchRunStore(store);
  }

  /** Records that `job` started at `at`; returns the run id. */
  async start(job: string, at: Date): Promise<string> {
    const runId = `${at.toISOString().replace(/[-:.]/g, "")}-${randomBytes(4).toString("hex")}`;
    await this.store.run(
      "INSERT INTO batch_runs VALUES ($id, $job, make_timestamp($at::BIGINT), NULL, 'running', NULL, NULL, $host, $pid)",
      { id: runId, job, at: us(at), host: hostname(), pid: process.pid },
    );
    return runId;
  }

  /** Records the end of a run: ok with its counts, or failed with the error message. */
  async finish(
    runId: string,
    end: { at: Date; status: "ok" | "failed"; counts?: Record<string, unknown>; error?: string },
  ): Promise<void> {
    await this.store.run(
      `UPDATE batch_runs SET ended_at = make_timestamp($at::BIGINT), status = $status, counts = $counts, error = $error
       WHERE run_id = $id`,
      {
        id: runId,
        at: us(end.at),
        status: end.status,
        counts: end.counts === undefined ? null : JSON.stringify(end.counts),
        error: end.error ?? null,
      },
    );
  }

  /** End time of the newest successful run of `job`, or null when it never succeeded. */
  async lastSuccess(job: string): Promise<Date | null> {
    const r = await this.store.one<{ ms: number | null }>(
      "SELECT epoch_ms(max(ended_at))::DOUBLE AS ms FROM batch_runs WHERE job = $job AND status = 'ok'",
      { job },
    );
    return r?.ms === null || r?.ms === undefined ? null : new Date(r.ms);
  }

  /** The newest successful run of `job` (its counts carry the incremental watermark), or null. */
  async lastSuccessfulRun(job: string): Promise<BatchRun | null> {
    const r = await this.store.one<Raw>(
      `${SELECT} WHERE job = $job AND status = 'ok' ORDER BY ended_at DESC, run_id DESC LIMIT 1`,
      { job },
    );
    return r === undefined ? null : fromRaw(r);
  }

  /** The newest runs first (all jobs, or one). */
  async recent(limit = 20, job?: string): Promise<BatchRun[]> {
    const rows =
      job === undefined
        ? await this.store.all<Raw>(`${SELECT} ORDER BY started_at DESC, run_id DESC LIMIT $n`, { n: limit })
        : await this.store.all<Raw>(
            `${SELECT} WHERE job = $job ORDER BY started_at DESC, run_id DESC LIMIT $n`,
            {
              job,
              n: limit,
            },
          );
    return rows.map(fromRaw);
  }
}

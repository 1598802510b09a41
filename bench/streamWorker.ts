/**
 * `mastery worker` as a child process for the benches (bench/load.bench.ts's pg-stream mode, bench/stream.bench.ts):
 * the CLI's own stream worker on a run's own stream, PostgreSQL schema and Redis prefix, with the benches' local
 * services (MASTERY_*_URL or their defaults). stderr is piped to `onLog` (the worker's log lines); stdout ignored.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BENCH_NATS_URL, BENCH_PG_URL, BENCH_REDIS_URL } from "./benchEnv.ts";

export interface StreamWorkerOptions {
  stream: string;
  subjectPrefix: string;
  durable: string;
  /** PostgreSQL schema of the run's stores. */
  schema: string;
  /** Redis key prefix of the run's state. */
  redisPrefix: string;
  pseudonymKey: string;
  /** The worker's local DuckDB file (`--db`); the CLI's default when absent. */
  db?: string;
  /** A served model's directory (`--served-model`). */
  servedModel?: string;
  /** More environment for the child (e.g. LOG_LEVEL, MASTERY_QUIET). */
  env?: Record<string, string>;
  /** Each chunk the worker writes to stderr. */
  onLog?: (chunk: string) => void;
}

/** Starts one `mastery worker` (bin/mastery.js, the build's CLI: run `npm run build` first). */
export function spawnStreamWorker(o: StreamWorkerOptions): ChildProcess {
  const bin = fileURLToPath(new URL("../bin/mastery.js", import.meta.url));
  const args = [
    bin,
    "worker",
    "--stream",
    o.stream,
    "--subject-prefix",
    o.subjectPrefix,
    "--durable",
    o.durable,
  ];
  if (o.db !== undefined) args.push("--db", o.db);
  if (o.servedModel !== undefined) args.push("--served-model", o.servedModel);
  const w = spawn(process.execPath, args, {
    env: {
      ...process.env,
      MASTERY_NATS_URL: BENCH_NATS_URL,
      MASTERY_PG_URL: BENCH_PG_URL,
      MASTERY_PG_SCHEMA: o.schema,
      MASTERY_REDIS_URL: BENCH_REDIS_URL,
      MASTERY_REDIS_PREFIX: o.redisPrefix,
      MASTERY_PSEUDONYM_KEY: o.pseudonymKey,
      ...o.env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const onLog = o.onLog;
  if (onLog !== undefined) w.stderr?.on("data", (d: Buffer) => onLog(d.toString()));
  return w;
}

import cluster from "node:cluster";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Command } from "commander";
import { pseudonymizerFromEnv } from "../../features/pseudonymize.ts";
import { loadDriftConfig } from "../../monitoring/config.ts";
import { lockFromEnv, type RetrainLock } from "../../monitoring/locks.ts";
import { createApp, loadServingConfig, servingDuckOptions } from "../../serving/app.ts";
import { formatDuration, jwtSecretFromEnv, maxTtlFromEnv, signToken } from "../../serving/auth.ts";
import { DEFAULT_SHUTDOWN_TIMEOUT_MS, trackRequests, within } from "../../serving/gracefulShutdown.ts";
import { openRosterStore } from "../../serving/roster.ts";
import { superviseWorkers, workerId, workerSlot } from "../../serving/serveCluster.ts";
import { openServingBackends, ServingBackendError } from "../../serving/servingBackends.ts";
import { StallWatch } from "../../serving/stallWatch.ts";
import { busConfigFromEnv, streamStoreConfigFromEnv } from "../../serving/streamStores.ts";
import { streamModels } from "../../serving/updater.ts";
import { warmUpApp } from "../../serving/warmUp.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { CliError, defaultDbPath, parseIntOption } from "../options.ts";

interface ServeOptions {
  port: string;
  host: string;
  db?: string;
  cert?: string;
  key?: string;
  demo?: boolean;
  bktModel?: string;
  eloModel?: string;
  servedModel?: string;
  artifacts?: string;
  modelName?: string;
  monitor: boolean;
  monitorInterval?: string;
  driftConfig?: string;
  viaStream?: boolean;
  shutdownTimeout: string;
  workers: string;
}

export function register(program: Command): void {
  program
    .command("serve")
    .description(
      "Run the HTTP API (GET /mastery, /recommendations, POST /events, /feedback, /score, /metrics, /openapi.json, /docs). " +
        "Needs MASTERY_JWT_SECRET and MASTERY_PSEUDONYM_KEY unless --demo; HTTPS with --cert/--key (or MASTERY_TLS_CERT/MASTERY_TLS_KEY).",
    )
    .option("--port <n>", "port", process.env.PORT ?? "8080")
    .option("--host <addr>", "address to bind", "127.0.0.1")
    .option("--db <path>", "DuckDB store (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--cert <file>", "TLS certificate (PEM); with --key serves HTTPS")
    .option("--key <file>", "TLS private key (PEM)")
    .option("--bkt-model <dir>", "BKT model for the incremental update (default parameters otherwise)")
    .option("--elo-model <dir>", "Elo model for the incremental update")
    .option(
      "--served-model <dir>",
      "served model directory (`mastery train served --out DIR`, with the latent filter): the stream carries its filter per (student, topic) and writes the 'latent' and 'served' scores within seconds of an event; default: none",
    )
    .option(
      "--artifacts <dir>",
      "model registry artifact store (default: $MASTERY_ARTIFACTS or .mastery/artifacts)",
    )
    .option(
      "--model-name <name>",
      "registry model whose champion (or experiment arm) serves ML scores (default: $MASTERY_MODEL_NAME, config/serving.yaml model_name, or mastery)",
    )
    .option(
      "--monitor-interval <s>",
      "seconds between drift-monitor ticks (default: config/serving.yaml monitor_interval_s, 900)",
    )
    .option("--no-monitor", "do not run the drift monitor / retrain loop in this server")
    .option("--drift-config <file>", "drift and retrain settings (default: config/drift.yaml)")
    .option(
      "--via-stream",
      "POST /events validates, stores and publishes the events to NATS JetStream (MASTERY_NATS_URL) instead of " +
        "applying them; run `mastery worker` to apply them (needs MASTERY_PG_URL)",
    )
    .option(
      "--shutdown-timeout <ms>",
      "on SIGTERM/SIGINT: stop accepting, finish requests in flight and close keep-alive connections within this time, then exit",
      process.env.MASTERY_SHUTDOWN_TIMEOUT_MS ?? String(DEFAULT_SHUTDOWN_TIMEOUT_MS),
    )
    .option(
      "--workers <n>",
      "run N server processes sharing the port (node:cluster; needs MASTERY_PG_URL and MASTERY_REDIS_URL). " +
        "SIGHUP restarts them one at a time; a worker that dies is replaced. Each keeps its own DuckDB file <db>.workerI",
      "1",
    )
    .option(
      "--demo",
      "synthetic data only: the PUBLIC demo JWT secret and pseudonym key (with a loud warning), prints an admin token; " +
        "nothing else (NODE_ENV, MASTERY_DEMO) switches to them",
    )
    .addHelpText(
      "after",
      `
Example:
  npx mastery serve --demo --db .mastery/demo/mastery.duckdb --port 8080
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/mastery/student-000001
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/models/mastery   # registry over REST
  MASTERY_JWT_SECRET=... MASTERY_PSEUDONYM_KEY=... npx mastery serve --cert tls.crt --key tls.key --host 0.0.0.0
  npx mastery serve --demo --monitor-interval 300   # drift check every 5 min; retrain under the lock
                                                    # (PostgreSQL advisory if MASTERY_PG_URL, Redis if
                                                    # MASTERY_REDIS_URL, else a file next to the store)

Stores: the embedded DuckDB file by default. With MASTERY_PG_URL (student_mastery, history, topics,
raw_events on PostgreSQL; MASTERY_PG_SCHEMA picks a schema) and/or MASTERY_REDIS_URL (learner_state;
MASTERY_REDIS_PREFIX), POST /events runs through the same IncrementalUpdater and stores as
\`mastery worker\`, and GET /mastery, /history, /recommendations read from them. The DuckDB file still
keeps the registry, experiments, alerts, dead letters and a copy of the events accepted over HTTP.
  MASTERY_PG_URL=postgres://postgres@127.0.0.1:5432/test MASTERY_REDIS_URL=redis://127.0.0.1:6379 \
    npx mastery serve --demo
  MASTERY_PG_URL=... MASTERY_REDIS_URL=... MASTERY_NATS_URL=nats://127.0.0.1:4222 npx mastery serve --via-stream
  MASTERY_PG_URL=... MASTERY_REDIS_URL=... MASTERY_NATS_URL=nats://127.0.0.1:4222 npx mastery worker
`,
    )
    .action(async (opts: ServeOptions) => {
      const port = parseIntOption(opts.port, "--port", 0);
      const shutdownMs = parseIntOption(opts.shutdownTimeout, "--shutdown-timeout", 0);
      const workers = parseIntOption(opts.workers, "--workers", 1);
      if (workers > 1 && cluster.isPrimary) {
        for (const v of ["MASTERY_PG_URL", "MASTERY_REDIS_URL"])
          if (!process.env[v])
            throw new CliError(
              `--workers ${workers} runs ${workers} server processes, which must share their scores and learner state: ` +
                "set MASTERY_PG_URL and MASTERY_REDIS_URL (e.g. MASTERY_PG_URL=postgres://postgres@127.0.0.1:5432/test " +
                "MASTERY_REDIS_URL=redis://127.0.0.1:6379); a DuckDB file is held by one process",
            );
        const code = await superviseWorkers({
          workers,
          shutdownMs,
          log: (msg, fields) =>
            process.stderr.write(
              `${JSON.stringify({ time: Date.now(), role: "primary", msg, ...fields })}\n`,
            ),
        });
        process.exit(code);
      }
      // In a cluster worker: its own DuckDB file (registry, alerts, dead letters, raw copy), the drift
      // monitor in worker 1 only.
      const wid = workerId();
      const demo = opts.demo === true;
      const jwtSecret = jwtSecretFromEnv({ demo });
      const jwtMaxTtlSec = maxTtlFromEnv();
      const pseudonymizer = pseudonymizerFromEnv({ demo });
      const certPath = opts.cert ?? process.env.MASTERY_TLS_CERT;
      const keyPath = opts.key ?? process.env.MASTERY_TLS_KEY;
      if ((certPath === undefined) !== (keyPath === undefined)) {
        throw new CliError("HTTPS needs both --cert and --key (or MASTERY_TLS_CERT and MASTERY_TLS_KEY)");
      }
      const servingConfig = loadServingConfig();
      const intervalMs =
        opts.monitorInterval !== undefined
          ? 1000 * parseIntOption(opts.monitorInterval, "--monitor-interval", 1)
          : servingConfig.monitorIntervalMs;
      const driftConfig = opts.monitor && (wid ?? 1) === 1 ? loadDriftConfig(opts.driftConfig) : undefined;
      const basePath = opts.db ?? defaultDbPath();
      const slot = workerSlot();
      const dbPath = slot === null ? basePath : basePath.replace(/(\.duckdb)?$/, `.worker${slot}$1`);
      const store = await DuckStore.open(dbPath, servingDuckOptions(servingConfig));
      const backends = await openServingBackends({
        duck: store,
        stores: {
          ...streamStoreConfigFromEnv(dbPath),
          // MASTERY_PG_POOL_MAX, when set, overrides serving.yaml pg_pool_max.
          pgPoolMax: process.env.MASTERY_PG_POOL_MAX ? undefined : servingConfig.pgPoolMax,
        },
        models: streamModels({
          bktModelDir: opts.bktModel,
          eloModelDir: opts.eloModel,
          servedModelDir: opts.servedModel,
        }),
        viaStream: opts.viaStream === true ? busConfigFromEnv() : undefined,
        invalidatedCacheTtlMs: servingConfig.sharedCacheTtlMs,
      }).catch((err: unknown) => {
        store.close();
        if (err instanceof ServingBackendError) throw new CliError(err.message);
        throw err;
      });
      // Class rosters (teacher access): in PostgreSQL when configured, so `mastery roster load` can
      // change them while this server runs; otherwise createApp uses the embedded file's tables.
      const rosterPg = process.env.MASTERY_PG_URL
        ? await openRosterStore({
            pgUrl: process.env.MASTERY_PG_URL,
            pgSchema: process.env.MASTERY_PG_SCHEMA || undefined,
            duck: async () => store,
          })
        : undefined;
      const lock: RetrainLock | undefined =
        driftConfig === undefined
          ? undefined
          : lockFromEnv({ key: driftConfig.retrain.lockKey, ttlMs: driftConfig.retrain.lockTtlMs, dbPath });
      const {
        app,
        ctx,
        monitor,
        drain: drainWebhooks,
      } = await createApp({
        store,
        pseudonymizer,
        jwtSecret,
        jwtMaxTtlSec,
        ...(rosterPg !== undefined ? { roster: rosterPg.roster } : {}),
        config: servingConfig,
        ...(driftConfig !== undefined && lock !== undefined
          ? { monitor: { config: driftConfig, lock, intervalMs, workDir: `${dbPath}.retrain` } }
          : {}),
        ...(opts.artifacts !== undefined ? { artifactBase: opts.artifacts } : {}),
        ...(opts.modelName !== undefined ? { modelName: opts.modelName } : {}),
        ...backends.deps,
        modelDirs: {
          ...(opts.bktModel !== undefined ? { bkt: opts.bktModel } : {}),
          ...(opts.eloModel !== undefined ? { elo: opts.eloModel } : {}),
          ...(opts.servedModel !== undefined ? { served: opts.servedModel } : {}),
        },
      });
      const server =
        certPath !== undefined && keyPath !== undefined
          ? createHttpsServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) }, app)
          : createHttpServer(app);
      // Under --workers: which process answered (tests, and an operator behind the shared port).
      if (wid !== null)
        server.prependListener("request", (_req, res) => res.setHeader("X-Mastery-Worker", String(wid)));
      const requests = trackRequests(server);
      // /readyz answers 503 warming_up until the warm-up below is done (the balancer waits for it).
      ctx.startup.warmingUp = servingConfig.warmUp.rounds > 0;
      await new Promise<void>((resolve) => server.listen(port, opts.host, resolve));
      const scheme = certPath !== undefined ? "https" : "http";
      ctx.logger.info(
        { url: `${scheme}://${opts.host}:${port}`, db: store.path, stores: backends.describe },
        "mastery API listening",
      );
      if (demo && (wid ?? 1) === 1) {
        const ttl = Math.min(12 * 3600, jwtMaxTtlSec);
        const token = await signToken(jwtSecret, { role: "admin", sub: "demo-admin" }, `${ttl}s`);
        process.stderr.write(`demo admin token (${formatDuration(ttl)}): ${token}\n`);
      }
      if (monitor !== null) ctx.logger.info({ intervalMs, lock: lock?.kind }, "drift monitor loop started");
      // A stretch in which the process answered nothing is logged with its length and GC share
      // (docs/runbook.md "Slow answers from one server"): the latency histogram alone does not say when or why.
      const stalls = new StallWatch({
        onStall: (s) => {
          ctx.metrics.stalls.inc();
          ctx.metrics.stalledSeconds.inc(s.blockedMs / 1000);
          ctx.logger.warn(
            {
              blockedMs: s.blockedMs,
              gcMs: s.gcMs,
              inFlight: requests.inFlight,
              warmingUp: ctx.startup.warmingUp,
            },
            "event loop blocked",
          );
        },
      });
      stalls.start();
      let stopping = false;
      // The start-up warm-up (below, after the handlers): a stop waits for it before closing the stores.
      let warming: Promise<unknown> = Promise.resolve();
      const stop = async (signal: string) => {
        if (stopping) {
          // A second signal: exit now (the OS releases the DuckDB lock with the process).
          ctx.logger.warn({ signal }, "second signal while draining: exiting now");
          process.exit(130);
        }
        stopping = true;
        const t0 = Date.now();
        ctx.logger.info(
          { signal, inFlight: requests.inFlight, timeoutMs: shutdownMs },
          "shutting down: no new connections, finishing requests in flight",
        );
        const drained = await requests.drain(shutdownMs);
        const left = () => Math.max(500, shutdownMs - (Date.now() - t0));
        await within(warming, left());
        await within(Promise.resolve(monitor?.stop()), left());
        ctx.backends.close();
        await within(drainWebhooks(), Math.min(2000, left()));
        await within(lock?.close() ?? Promise.resolve(), 1000);
        await within(backends.close(), Math.min(2000, left()));
        await within(rosterPg?.close() ?? Promise.resolve(), 1000);
        // Closing DuckDB while a cut request still runs a query is not safe; process exit releases
        // the file lock in that case.
        if (drained.clean) store.close();
        ctx.logger.info(
          { ms: Date.now() - t0, clean: drained.clean, requestsCut: drained.cut },
          "stopped; DuckDB file released",
        );
        process.exit(drained.clean ? 0 : 1);
      };
      process.on("SIGINT", () => void stop("SIGINT"));
      process.on("SIGTERM", () => void stop("SIGTERM"));
      // After the signal handlers: a SIGTERM during the warm-up drains and exits like any other.
      warming = warmUpApp(app, ctx, servingConfig.warmUp, {
        token: await signToken(
          jwtSecret,
          { role: "service", sub: "warm-up", scopes: ["mastery:read", "events:write"] },
          "120s",
        ),
        // As many at once as the reads can run concurrently, so every pooled connection opens.
        concurrency:
          ctx.read.kind === "postgres"
            ? Number(process.env.MASTERY_PG_POOL_MAX) || servingConfig.pgPoolMax
            : servingConfig.readConnections + 1,
      });
      await warming;
    });
}

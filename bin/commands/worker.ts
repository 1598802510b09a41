import type { Command } from "commander";
import { pseudonymizerFromEnv } from "../../features/pseudonymize.ts";
import { AlertEngine, alertsAfterApply, DEFAULT_THRESHOLDS, loadThresholds } from "../../serving/alerts.ts";
import { BackendMonitor } from "../../serving/backendMonitor.ts";
import { openCachePublisher, publishApplied } from "../../serving/servingBackends.ts";
import {
  busConfigFromEnv,
  openBus,
  openStreamStores,
  streamStoreConfigFromEnv,
} from "../../serving/streamStores.ts";
import { startWorker } from "../../serving/streamWorker.ts";
import { IncrementalUpdater, streamModels } from "../../serving/updater.ts";
import { NatsBus } from "../../storage/bus.ts";
import { BACKEND_LABEL, faultDetail } from "../../storage/unavailable.ts";
import { CliError, defaultDbPath, parseIntOption } from "../options.ts";

interface WorkerCliOptions {
  db?: string;
  bktModel?: string;
  eloModel?: string;
  servedModel?: string;
  stream?: string;
  subjectPrefix?: string;
  durable?: string;
  batch: string;
  concurrency: string;
  ackWait: string;
  maxDeliver: string;
  idleExit?: string;
  shutdownTimeout: string;
  demo?: boolean;
  thresholds: string;
}

export function register(program: Command): void {
  program
    .command("worker")
    .description(
      "Consume learning events from NATS JetStream (MASTERY_NATS_URL) and keep learner_state and student_mastery " +
        "up to date, one event at a time through the same BKT + Elo fold as `mastery score bkt-elo`. Idempotent by " +
        "event_id; run several workers on the same durable consumer to scale out (state in Redis via " +
        "MASTERY_REDIS_URL, raw events and scores in PostgreSQL via MASTERY_PG_URL; else the DuckDB file).",
    )
    .option("--db <path>", "DuckDB store used when MASTERY_PG_URL / MASTERY_REDIS_URL are unset")
    .option(
      "--bkt-model <dir>",
      "BKT model directory (model.json from `mastery train bkt`); default: default parameters",
    )
    .option(
      "--elo-model <dir>",
      "Elo model directory (model.json from `mastery train elo`); default: default parameters",
    )
    .option(
      "--served-model <dir>",
      "served model directory (`mastery train served --out DIR`, with the latent filter): the stream carries its filter per (student, topic) and writes the 'latent' and 'served' scores within seconds of an event; default: none",
    )
    .option("--stream <name>", "JetStream stream", "MASTERY_EVENTS")
    .option("--subject-prefix <prefix>", "subjects are <prefix>.<event type>", "mastery.events")
    .option("--durable <name>", "durable consumer shared by all workers", "mastery-worker")
    .option("--batch <n>", "largest batch of events applied at once", "500")
    .option(
      "--concurrency <n>",
      "batches in progress at once (2 overlaps score writes with the next update)",
      "2",
    )
    .option("--ack-wait <ms>", "redeliver a message not acknowledged within this time", "10000")
    .option("--max-deliver <n>", "dead-letter a message after this many deliveries", "10")
    .option("--idle-exit <seconds>", "exit once no message is pending for this long (batch catch-up runs)")
    .option(
      "--shutdown-timeout <ms>",
      "on SIGTERM/SIGINT, wait this long for batches in progress before exiting (the rest is redelivered)",
      process.env.MASTERY_SHUTDOWN_TIMEOUT_MS ?? "10000",
    )
    .option(
      "--thresholds <file>",
      "at-risk thresholds and webhooks checked after each applied batch",
      DEFAULT_THRESHOLDS,
    )
    .option("--demo", "pseudonymize with the public demo key when MASTERY_PSEUDONYM_KEY is unset")
    .addHelpText(
      "after",
      `
Example:
  MASTERY_NATS_URL=nats://127.0.0.1:4222 MASTERY_REDIS_URL=redis://127.0.0.1:6379 \\
  MASTERY_PG_URL=postgres://postgres@127.0.0.1:5432/test npx mastery worker --elo-model out/elo
  # then, to check it against a full replay:  npx mastery recompute --elo-model out/elo
`,
    )
    .action(async (opts: WorkerCliOptions) => {
      const busCfg = busConfigFromEnv();
      if (busCfg.natsUrl === undefined)
        throw new CliError(
          "mastery worker reads NATS JetStream: set MASTERY_NATS_URL (e.g. nats://127.0.0.1:4222). Without it, " +
            "events are applied in-process by the API server (POST /events).",
        );
      const batch = parseIntOption(opts.batch, "--batch", 1);
      const idleExit =
        opts.idleExit !== undefined ? parseIntOption(opts.idleExit, "--idle-exit", 1) : undefined;
      const pseudonymizer = pseudonymizerFromEnv({ demo: opts.demo === true });
      const models = streamModels({
        bktModelDir: opts.bktModel,
        eloModelDir: opts.eloModel,
        servedModelDir: opts.servedModel,
      });
      const shutdownMs = parseIntOption(opts.shutdownTimeout, "--shutdown-timeout", 0);
      const log = (m: string) => process.stderr.write(`${new Date().toISOString()} worker: ${m}\n`);
      const storeCfg = streamStoreConfigFromEnv(opts.db ?? defaultDbPath());
      const stores = await openStreamStores(storeCfg);
      // The servers' body caches drop the students each batch wrote (Redis pub/sub).
      const cachePublisher = await openCachePublisher(storeCfg).catch(async (err: unknown) => {
        await stores.close();
        throw err;
      });
      const bus = await openBus({
        onStatus: (s) =>
          log(
            s.state === "reconnected"
              ? `NATS reconnected (${s.server}); consuming again`
              : `NATS ${s.state} (${s.server}); reconnecting with backoff, acks are retried by redelivery`,
          ),
        ...busCfg,
        stream: opts.stream,
        subjectPrefix: opts.subjectPrefix,
        durable: opts.durable,
        ackWaitMs: parseIntOption(opts.ackWait, "--ack-wait", 100),
        maxDeliver: parseIntOption(opts.maxDeliver, "--max-deliver", 1),
      });
      const updater = new IncrementalUpdater({
        raw: stores.raw,
        state: stores.state,
        mastery: stores.mastery,
        models,
      });
      log(`${stores.describe}; models bkt=${models.bktVersion} elo=${models.eloVersion}`);
      const monitor = new BackendMonitor({
        probes: stores.probes,
        onChange: (e) =>
          log(
            e.state === "down"
              ? `${BACKEND_LABEL[e.backend]} is down (${e.detail}); paused pulling, waiting and retrying with backoff`
              : `${BACKEND_LABEL[e.backend]} is back after ${(e.downMs / 1000).toFixed(1)} s; resuming`,
          ),
      });
      // At-risk alerts: checked after each applied batch against the scores this worker wrote
      // (PostgreSQL or the DuckDB file); the webhooks of config/thresholds.yaml are called from here.
      const alerts = new AlertEngine(stores.alerts, loadThresholds(opts.thresholds), {
        onDelivery: (outcome) => {
          if (outcome === "failed")
            log("a webhook delivery failed after its retries (see webhook_deliveries)");
        },
      });
      // On the DuckDB file the alert check shares the updater's one connection: one batch at a time, so
      // its transaction never interleaves with the next batch's (PostgreSQL has a pool: no limit).
      let concurrency = parseIntOption(opts.concurrency, "--concurrency", 1);
      if (!stores.alerts.concurrent && concurrency > 1) {
        log(`--concurrency ${concurrency} -> 1: alerts and scores share one DuckDB connection`);
        concurrency = 1;
      }
      const checkAlerts = alertsAfterApply(alerts);
      const worker = await startWorker({
        monitor,
        afterApply: async (results) => {
          // Before the alert check (a failing check must not leave the servers' bodies stale), and a failed
          // publish must not skip the check.
          if (cachePublisher !== null)
            await publishApplied(cachePublisher, results).catch((err: unknown) =>
              log(
                `publishing body cache invalidations failed (re-published in the background until Redis answers): ${faultDetail(err)}`,
              ),
            );
          await checkAlerts(results);
        },
        bus,
        updater,
        raw: stores.raw,
        pseudonymizer,
        maxBatch: batch,
        concurrency,
        onError: (err) => log(faultDetail(err)),
      });
      const report = () => {
        const s = worker.stats;
        log(
          `${s.messages} messages in ${s.batches} batches: ${s.applied} applied, ${s.replayed} replayed, ` +
            `${s.duplicates} duplicates, ${s.deadLettered} dead-lettered, ${s.failedBatches} failed batches; ` +
            `${updater.stats.conflicts} key conflicts; ms ${JSON.stringify(
              Object.fromEntries(Object.entries(updater.stats.ms).map(([k, v]) => [k, Math.round(v)])),
            )}`,
        );
      };
      const timer = setInterval(report, 10_000);
      let idleSince: number | undefined;
      await new Promise<void>((resolve) => {
        const finish = () => {
          resolve();
          // A second signal while draining: exit now (unacknowledged messages are redelivered).
          const force = () => process.exit(130);
          process.once("SIGINT", force);
          process.once("SIGTERM", force);
        };
        process.once("SIGINT", finish);
        process.once("SIGTERM", finish);
        if (idleExit !== undefined && bus instanceof NatsBus) {
          const poll = setInterval(async () => {
            // NATS may be restarting: count that as not idle and ask again on the next tick.
            const b = await bus.backlog().catch(() => ({ pending: 1, ackPending: 0 }));
            if (b.pending === 0 && b.ackPending === 0) {
              idleSince ??= Date.now();
              if (Date.now() - idleSince >= idleExit * 1000) {
                clearInterval(poll);
                finish();
              }
            } else idleSince = undefined;
          }, 250);
        }
      });
      clearInterval(timer);
      // Bounded: batches in progress get shutdownMs to finish; whatever is not acknowledged by then
      // is redelivered to another worker (the updater is idempotent by event_id).
      log(`stopping: finishing batches in progress (at most ${shutdownMs} ms)`);
      const finished = await Promise.race([
        worker.stop().then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), shutdownMs).unref()),
      ]);
      report();
      // Deliveries in flight get the rest of the shutdown budget (an undelivered alert is logged in webhook_deliveries).
      await Promise.race([alerts.drain(), new Promise((r) => setTimeout(r, shutdownMs).unref())]);
      if (!finished) log("shutdown timeout: exiting with batches unfinished; they will be redelivered");
      await Promise.race([
        Promise.all([bus.close(), stores.close(), cachePublisher?.close()]).catch(() => undefined),
        new Promise((r) => setTimeout(r, 2000).unref()),
      ]);
      process.exit(finished ? 0 : 1);
    });
}

import type { RequestHandler } from "express";
import type { ServingContext } from "../app.ts";
import { buildOpenApi, docsHtml } from "../openapi.ts";

/**
 * Liveness, plus when each scheduled job (mastery schedule) last succeeded (ISO time, null: never).
 * Answers from the last read at once (a due re-read runs in the background): the read goes through
 * the store's queue, and liveness must not wait behind a POST /events batch.
 */
export const healthz =
  (ctx: ServingContext): RequestHandler =>
  async (_req, res) => {
    const last = await ctx.batchRuns.lastSuccess(0);
    res.json({
      status: "ok",
      lastBatchSuccess: last.batch?.toISOString() ?? null,
      lastChecksSuccess: last.checks?.toISOString() ?? null,
    });
  };

/**
 * Ready when every backend answers and start-up warm-up is done: probes each one now (bounded, in parallel) and reports it with
 * its latency; 503 + Retry-After while any is down. Turns 200 again by itself once they answer.
 */
export const readyz =
  (ctx: ServingContext): RequestHandler =>
  async (_req, res) => {
    const backends = await ctx.backends.check();
    const down = backends.filter((b) => b.status === "down");
    const warming = ctx.startup.warmingUp;
    if (down.length > 0) res.status(503).set("Retry-After", String(ctx.backends.retryAfterSeconds()));
    else if (warming) res.status(503).set("Retry-After", "1");
    res.json({
      status: down.length > 0 ? "not_ready" : warming ? "warming_up" : "ready",
      ...(down.length > 0
        ? {
            error: "not_ready",
            field: "(backend)",
            reason: down.map((b) => `${b.backend}: ${b.error ?? "down"}`).join("; "),
          }
        : warming
          ? {
              error: "warming_up",
              field: "(startup)",
              reason: "the server is warming up (serving/warmUp.ts); ready within a few seconds",
            }
          : {}),
      backends: Object.fromEntries(
        backends.map((b) => [
          b.backend,
          {
            status: b.status,
            latencyMs: b.latencyMs,
            since: b.since,
            ...(b.error ? { error: b.error } : {}),
          },
        ]),
      ),
      pendingStoreOps: ctx.gate.pending,
    });
  };

export const metricsRoute =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "metrics:read");
    res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  };

export const openapiJson = (): RequestHandler => {
  let cached: string | undefined;
  return (_req, res) => {
    cached ??= JSON.stringify(buildOpenApi());
    res.type("application/json").send(cached);
  };
};

export const docs = (): RequestHandler => {
  let cached: string | undefined;
  return (_req, res) => {
    cached ??= docsHtml(buildOpenApi());
    res.type("text/html").send(cached);
  };
};

import type { RequestHandler } from "express";
import type { ServingContext } from "../app.ts";
import { buildOpenApi, docsHtml } from "../openapi.ts";

export const healthz = (): RequestHandler => (_req, res) => {
  res.json({ status: "ok" });
};

/** Ready when the store answers a query. */
export const readyz =
  (ctx: ServingContext): RequestHandler =>
  async (_req, res) => {
    try {
      await ctx.gate.run(() => ctx.store.one("SELECT 1 AS ok"));
      res.json({ status: "ready", pendingStoreOps: ctx.gate.pending });
    } catch (err) {
      res.status(503).json({
        error: "not_ready",
        field: "(store)",
        reason: `store unreachable: ${(err as Error).message}`,
      });
    }
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

import type { RequestHandler } from "express";
import { qualityReportWithin } from "../../features/quality.ts";
import type { ServingContext } from "../app.ts";
import { AccessError } from "../auth.ts";
import { HttpError } from "../httpError.ts";

/**
 * Ops reads for the dashboard's data page: the data-quality report (features/quality.ts, the same
 * one `mastery quality --json` prints) and the latest drift checks the monitor logged in
 * drift_checks (monitoring/). Admin, or a service token with scope metrics:read; never teachers:
 * the report counts rows across every school.
 */

const staffOnly = async (ctx: ServingContext, req: Parameters<RequestHandler>[0]) => {
  const p = await ctx.principal(req, "metrics:read");
  if (p.role !== "admin" && p.role !== "service") {
    throw new AccessError(403, "role", `role "${p.role}" may not read data-quality and drift reports`);
  }
};

/** Longest budget a caller may ask for with ?budget_ms (ms). */
export const MAX_QUALITY_BUDGET_MS = 120_000;

/**
 * GET /quality[?budget_ms=N]: the report within a time budget (default quality_budget_ms). It runs
 * section by section through the store gate, so other requests are served in between; past the
 * budget the answer is `status: "partial"` with the sections done and `missing` naming the rest.
 */
export const getQuality =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await staffOnly(ctx, req);
    const raw = req.query.budget_ms;
    const budgetMs = raw === undefined ? ctx.config.qualityBudgetMs : Number(raw);
    if (!Number.isInteger(budgetMs) || budgetMs < 1 || budgetMs > MAX_QUALITY_BUDGET_MS) {
      throw new HttpError(
        400,
        "invalid_query",
        "budget_ms",
        `budget_ms must be an integer in [1, ${MAX_QUALITY_BUDGET_MS}] (milliseconds)`,
      );
    }
    const report = await qualityReportWithin(ctx.store, {
      asOf: ctx.now(),
      budgetMs,
      runSection: (fn) => ctx.gate.run(fn),
    });
    res.json(report);
  };

/** GET /drift/checks?limit=N (default 20, at most 500), newest first. */
export const getDriftChecks =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await staffOnly(ctx, req);
    const raw = req.query.limit;
    const limit = raw === undefined ? 20 : Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
      throw new HttpError(400, "invalid_query", "limit", "limit must be an integer in [1, 500]");
    }
    const checks = await ctx.gate.run(async () => {
      // The monitor creates drift_checks on its first run; before that there is nothing to show.
      if (!(await ctx.store.tableNames()).includes("drift_checks")) return [];
      const rows = await ctx.store.all<{
        checked_at: Date;
        drift: boolean;
        reference: string;
        current_from: Date;
        current_to: Date;
        tests: number;
        alerts: number;
        decision: string;
      }>(`SELECT * FROM drift_checks ORDER BY checked_at DESC LIMIT ${limit}`);
      return rows.map((r) => ({
        checkedAt: r.checked_at.toISOString(),
        drift: r.drift,
        reference: r.reference,
        currentFrom: r.current_from.toISOString(),
        currentTo: r.current_to.toISOString(),
        tests: Number(r.tests),
        alerts: Number(r.alerts),
        decision: JSON.parse(r.decision) as unknown,
      }));
    });
    res.json({ checks });
  };

export const QUALITY_COMPONENTS: Record<string, unknown> = {
  QualityReport: {
    type: "object",
    description:
      "features/quality.ts BudgetedQualityReport: totals, completeness, freshness, null rates, dead letters, schema drift, volume; status partial (and missing sections) when the time budget ran out",
    required: ["asOf", "status", "missing", "budgetMs", "elapsedMs"],
    properties: {
      asOf: { type: "string" },
      status: { type: "string", enum: ["complete", "partial"] },
      missing: { type: "array", items: { type: "string" } },
      budgetMs: { type: "integer" },
      elapsedMs: { type: "integer" },
      totals: { type: "object" },
    },
  },
  DriftChecks: {
    type: "object",
    required: ["checks"],
    properties: {
      checks: {
        type: "array",
        items: {
          type: "object",
          properties: {
            checkedAt: { type: "string" },
            drift: { type: "boolean" },
            reference: { type: "string" },
            currentFrom: { type: "string" },
            currentTo: { type: "string" },
            tests: { type: "integer" },
            alerts: { type: "integer" },
            decision: { type: "object" },
          },
        },
      },
    },
  },
};

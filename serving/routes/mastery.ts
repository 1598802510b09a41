import type { RequestHandler } from "express";
import type { ServingContext } from "../app.ts";
import { readHistory } from "../masteryView.ts";
import { loadRecommendationContext, recommend } from "../recommendations.ts";

const param = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? "") : (v ?? ""));

/** GET /mastery/:studentId */
export const getMastery =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "mastery:read");
    const key = await ctx.student(p, param(req.params.studentId), res);
    res.type("application/json").send(await ctx.masteryJson(key));
  };

/** GET /mastery/:studentId/:topicId/history */
export const getHistory =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "mastery:read");
    const key = await ctx.student(p, param(req.params.studentId), res);
    const topicId = param(req.params.topicId);
    const history = await ctx.gate.run(() => readHistory(ctx.read, key, topicId));
    res.json({ studentKey: key, topicId, history });
  };

/** GET /recommendations/:studentId */
export const getRecommendations =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "mastery:read");
    const key = await ctx.student(p, param(req.params.studentId), res);
    const mastery = JSON.parse(await ctx.masteryJson(key)) as {
      topics: { topicId: string; score: number }[];
    };
    const context = await ctx.gate.run(() => loadRecommendationContext(ctx.read, key));
    const recommendations = recommend({
      ...context,
      scores: new Map(mastery.topics.map((t) => [t.topicId, t.score])),
      masteredAt: ctx.config.masteredAt,
      targetSuccess: ctx.config.targetSuccess,
    });
    res.json({ studentKey: key, masteredAt: ctx.config.masteredAt, recommendations });
  };

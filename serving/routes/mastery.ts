import type { RequestHandler } from "express";
import type { ServingContext } from "../app.ts";
import { historyBodyJson } from "../historyBody.ts";
import { HttpError } from "../httpError.ts";
import { readStudentHistories } from "../masteryView.ts";
import { loadRecommendationContext, recommend } from "../recommendations.ts";
import { jsonSentAsIs, sendJsonText, sendServedBody } from "../servedBody.ts";

const param = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? "") : (v ?? ""));

/** What GET /mastery/:studentId?include= may add to the body. */
const INCLUDES = ["history"] as const;

function includeSet(raw: unknown): Set<(typeof INCLUDES)[number]> {
  if (raw === undefined) return new Set();
  const parts = typeof raw === "string" ? raw.split(",").map((x) => x.trim()) : null;
  const bad = parts === null ? "(repeated)" : parts.find((x) => !(INCLUDES as readonly string[]).includes(x));
  if (parts === null || bad !== undefined)
    throw new HttpError(
      400,
      "invalid_query",
      "include",
      `include may only be ${INCLUDES.join(", ")} (got ${bad ?? String(raw)}), given once: ?include=history`,
    );
  return new Set(parts as (typeof INCLUDES)[number][]);
}

/** GET /mastery's route pattern (also the hit path's metrics label, serving/masteryHitPath.ts). */
export const MASTERY_ROUTE = "/mastery/:studentId";

/**
 * GET /mastery/:studentId[?include=history]: with include=history the body also carries every served
 * topic's history (`histories`, as GET /mastery/:studentId/history answers them), so the dashboard's
 * student page needs this request and the recommendations only.
 */
export const getMastery =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "mastery:read");
    const key = await ctx.student(p, param(req.params.studentId), res);
    const include = includeSet(req.query.include);
    if (!include.has("history")) {
      // The cached bytes and ETag as they are (304 on a matching If-None-Match).
      sendServedBody(req, res, await ctx.masteryBody(key));
      return;
    }
    const view = JSON.parse(await ctx.masteryJson(key)) as { topics: { topicId: string }[] };
    const topicIds = view.topics.map((t) => t.topicId);
    const histories = await ctx.readRun(() => readStudentHistories(ctx.read, key, topicIds, ctx.now()));
    res.json({ ...view, histories });
  };

/** GET /mastery/:studentId/:topicId/history */
export const getHistory =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "mastery:read");
    const key = await ctx.student(p, param(req.params.studentId), res);
    const topicId = param(req.params.topicId);
    // The answer as JSON text (a hot topic's history is hundreds of entries), cached by (student, topic): a
    // history without a served row is sent as its cached bytes and ETag, as GET /mastery's bodies are.
    const h = await ctx.historyBody(key, topicId);
    if (h.kind === "fixed" && jsonSentAsIs(res)) sendServedBody(req, res, h.body);
    else sendJsonText(res, historyBodyJson(key, topicId, h, ctx.now()));
  };

/** Longest ?topics= list GET /mastery/:studentId/history accepts. */
export const MAX_HISTORY_TOPICS = 1000;

/** ?topics=a,b,c -> ["a", "b", "c"] (order kept, duplicates dropped); absent -> null (every topic). */
function topicList(raw: unknown): string[] | null {
  if (raw === undefined) return null;
  if (typeof raw !== "string")
    throw new HttpError(400, "invalid_query", "topics", "give topics once, comma-separated: ?topics=T1,T2");
  const ids = [...new Set(raw.split(",").map((t) => t.trim()))];
  if (ids.some((t) => t === ""))
    throw new HttpError(400, "invalid_query", "topics", "topics has an empty topic id; use ?topics=T1,T2");
  if (ids.length > MAX_HISTORY_TOPICS)
    throw new HttpError(
      400,
      "invalid_query",
      "topics",
      `topics lists ${ids.length} topics; at most ${MAX_HISTORY_TOPICS} per request (omit it for all)`,
    );
  return ids;
}

/** GET /mastery/:studentId/history?topics=: the histories of many topics in one request and one query. */
export const getHistories =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "mastery:read");
    const key = await ctx.student(p, param(req.params.studentId), res);
    const topicIds = topicList(req.query.topics);
    const topics = await ctx.readRun(() => readStudentHistories(ctx.read, key, topicIds, ctx.now()));
    res.json({ studentKey: key, topics });
  };

/** GET /recommendations/:studentId */
export const getRecommendations =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "mastery:read");
    const key = await ctx.student(p, param(req.params.studentId), res);
    // The served scores as the cached GET /mastery body has them (not re-parsed from its JSON).
    const { topics } = await ctx.masteryBody(key);
    // The topics table from the server's copy, and the student's topics from the body just read.
    const context = await ctx.readRun(() =>
      loadRecommendationContext(ctx.read, key, {
        topics: () => ctx.topicRows(),
        topicIds: topics.map((t) => t.topicId),
      }),
    );
    const recommendations = recommend({
      ...context,
      scores: new Map(topics.map((t) => [t.topicId, t.score])),
      masteredAt: ctx.config.masteredAt,
      targetSuccess: ctx.config.targetSuccess,
    });
    res.json({ studentKey: key, masteredAt: ctx.config.masteredAt, recommendations });
  };

import type { RequestHandler } from "express";
import { parseEventBatch, parseFeedback, parseScore } from "../apiSchemas.ts";
import type { ServingContext } from "../app.ts";
import { intakeEvents } from "../eventIntake.ts";
import { recordTeacherCorrection } from "../feedback.ts";
import { HttpError } from "../httpError.ts";
import { studentRawRows } from "../studentRows.ts";
import { updatedKeys } from "../updater.ts";

/**
 * POST /events: 200 when every item is accepted or a duplicate, 207 when some are rejected, 400
 * when all are; the body always lists every item's status (serving/eventIntake.ts has the
 * contract). With --via-stream the accepted events are published to the bus instead of applied
 * here (updatedKeys is then 0): a stream worker applies them, and GET /mastery shows the new
 * scores once it has.
 */
export const postEvents =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "events:write");
    const batch = parseEventBatch(req.body, ctx.config.maxBatch);
    if (!batch.ok) throw new HttpError(400, "invalid_body", batch.issue.field, batch.issue.reason);
    // The check runs outside the store's queue; the apply (with its alert check) joins concurrent
    // requests in one batch inside it (ctx.intake, wired in serving/app.ts).
    const result = await intakeEvents(ctx.intake, batch.value, ctx.now());
    // With --via-stream nothing is applied yet: the stream worker that applies the events publishes
    // their students once written (servingBackends publishApplied), which is what drops the bodies on
    // every server; dropping them here, before the apply, would only cost a miss of an unchanged body.
    // This server's bodies are dropped before the answer; the publish to the other servers goes out now
    // and is not waited for (their delivery is asynchronous anyway; a failure is logged and counted,
    // docs/runbook.md "Body cache across processes").
    if (ctx.publishEvents === undefined) void ctx.invalidate(result.studentKeys);
    ctx.metrics.events.inc({ outcome: "accepted" }, result.accepted);
    ctx.metrics.events.inc({ outcome: "duplicate" }, result.duplicate);
    ctx.metrics.events.inc({ outcome: "rejected" }, result.rejected);
    const status = result.rejected === 0 ? 200 : result.rejected === result.items.length ? 400 : 207;
    const firstError = result.items.find((i) => i.status === "rejected")?.errors?.[0];
    res.status(status).json({
      ...(status === 400 && firstError
        ? { error: "invalid_events", field: firstError.field, reason: firstError.reason }
        : {}),
      accepted: result.accepted,
      duplicate: result.duplicate,
      rejected: result.rejected,
      updatedKeys: result.updatedKeys.length,
      items: result.items,
    });
  };

/** POST /feedback: a teacher's correction, served at once as score_source teacher_override. */
export const postFeedback =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "feedback:write");
    const body = parseFeedback(req.body);
    if (!body.ok) throw new HttpError(400, "invalid_body", body.issue.field, body.issue.reason);
    const key = await ctx.student(p, body.value.studentId, res);
    const out = await ctx.gate.run(async () => {
      const r = await recordTeacherCorrection(
        ctx.store,
        ctx.scores,
        {
          studentKey: key,
          topicId: body.value.topicId,
          mastery: body.value.mastery,
          reason: body.value.reason,
          actor: p.actor,
          actorRole: p.role,
        },
        ctx.now(),
      );
      await ctx.alerts.check([{ studentKey: key, topicId: body.value.topicId }]);
      return r;
    });
    await ctx.invalidate([key]);
    res
      .status(201)
      .json({ studentKey: key, topicId: body.value.topicId, scoreSource: "teacher_override", ...out });
  };

/** POST /score: LMS hook; brings the student's keys up to date now and returns GET /mastery's body. */
export const postScore =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "score:write");
    const body = parseScore(req.body);
    if (!body.ok) throw new HttpError(400, "invalid_body", body.issue.field, body.issue.reason);
    const key = await ctx.student(p, body.value.studentId, res);
    // Re-applying the student's stored events folds in any the state has not seen yet (e.g. loaded
    // by the batch ingest); events already in the state are recognized as duplicates and change nothing.
    const updated = await ctx.gate.run(async () => {
      const rows = await studentRawRows(ctx.store, key, body.value.topicIds);
      const keys = updatedKeys(await ctx.updater.apply(rows));
      await ctx.alerts.check(keys);
      return keys.length;
    });
    await ctx.invalidate([key]);
    const mastery = await ctx.masteryJson(key);
    res.type("application/json").send(`{"updatedKeys":${updated},"mastery":${mastery}}`);
  };

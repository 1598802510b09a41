import type { RequestHandler } from "express";
import type { ServingContext } from "../app.ts";
import { AccessError, teacherMayUseClass } from "../auth.ts";
import { HttpError } from "../httpError.ts";
import { noRosterError } from "./roster.ts";

/**
 * GET /classes/:classId/mastery: the served score of every (student, topic) of one class, for the
 * dashboard's class view. Students are those on the class's ROSTER (the same rule the teacher
 * ownership check uses; events' class_id grants nothing), listed by student_key: raw ids are never
 * stored, so a teacher opens a student's page by the raw id the LMS shows them. Scores come from the
 * same cached per-student body as GET /mastery, so teacher overrides and experiment arms apply unchanged.
 */

const param = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? "") : (v ?? ""));

export interface ClassStudentRow {
  studentKey: string;
  scores: Record<string, { score: number; scoreSource: string }>;
  /** Topics scored below the threshold, sorted. */
  below: string[];
}

export const getClassMastery =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "mastery:read");
    const classId = param(req.params.classId);
    if (p.role === "student" || p.role === "parent") {
      throw new AccessError(403, "classId", `role "${p.role}" may not see a class view`);
    }
    const raw = req.query.threshold;
    const threshold = raw === undefined ? ctx.config.masteredAt : Number(raw);
    if (!(threshold >= 0 && threshold <= 1)) {
      throw new HttpError(400, "invalid_query", "threshold", "threshold must be a number in [0, 1]");
    }
    const cls = await ctx.roster.getClass(classId);
    if (p.role === "teacher") {
      const allowed =
        cls !== undefined && teacherMayUseClass(p, { classId, teacherIds: new Set(cls.teacherIds) });
      // Only a teacher whose token claims the class learns that it has no roster yet.
      if (!allowed && !(cls === undefined && p.classes.has(classId)))
        throw new AccessError(
          403,
          "classId",
          "a teacher may only see their own classes (per the class roster)",
        );
    }
    if (cls === undefined) throw noRosterError(classId);
    const topics = new Set<string>();
    const students: ClassStudentRow[] = [];
    for (const studentKey of cls.studentKeys) {
      const body = await ctx.masteryBody(studentKey);
      const scores: ClassStudentRow["scores"] = {};
      const below: string[] = [];
      for (const t of body.topics) {
        topics.add(t.topicId);
        scores[t.topicId] = { score: t.score, scoreSource: t.scoreSource };
        if (t.score < threshold) below.push(t.topicId);
      }
      students.push({ studentKey, scores, below: below.sort() });
    }
    res.json({ classId, threshold, topics: [...topics].sort(), students });
  };

const num = { type: "number" };
const str = { type: "string" };

export const CLASS_COMPONENTS: Record<string, unknown> = {
  ClassMastery: {
    type: "object",
    required: ["classId", "threshold", "topics", "students"],
    properties: {
      classId: str,
      threshold: { ...num, description: "Scores below it are listed in each student's `below`" },
      topics: { type: "array", items: str },
      students: {
        type: "array",
        items: {
          type: "object",
          required: ["studentKey", "scores", "below"],
          properties: {
            studentKey: str,
            scores: {
              type: "object",
              additionalProperties: {
                type: "object",
                properties: { score: num, scoreSource: str },
              },
            },
            below: { type: "array", items: str },
          },
        },
      },
    },
  },
};

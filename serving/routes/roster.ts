import type { RequestHandler } from "express";
import { parseRosterClass, ROSTER_CLASS_SCHEMA } from "../apiSchemas.ts";
import type { ServingContext } from "../app.ts";
import { HttpError } from "../httpError.ts";

/**
 * Class rosters over REST (admin, or a service with scope roster:write / roster:read). A PUT
 * replaces the whole class: students (raw LMS ids, pseudonymized at once and never stored) and
 * optional teachers (token sub). Teacher access to students comes only from these rosters.
 */

const param = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? "") : (v ?? ""));

const classIdOf = (v: string | string[] | undefined): string => {
  const id = param(v);
  if (id.length > 256)
    throw new HttpError(400, "invalid_path", "classId", "classId is longer than 256 characters");
  return id;
};

/** 404 naming the two ways to load a roster. */
export const noRosterError = (classId: string) =>
  new HttpError(
    404,
    "not_found",
    "classId",
    `class "${classId}" has no roster: load it with \`mastery roster load FILE.csv\` or PUT /roster/classes/${encodeURIComponent(classId)}`,
  );

/** PUT /roster/classes/:classId */
export const putRosterClass =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    const p = await ctx.principal(req, "roster:write");
    const classId = classIdOf(req.params.classId);
    const body = parseRosterClass(req.body);
    if (!body.ok) throw new HttpError(400, "invalid_body", body.issue.field, body.issue.reason);
    const counts = await ctx.roster.putClass(classId, body.value.students, body.value.teachers ?? [], {
      actor: p.actor,
      source: "api",
      at: ctx.now(),
    });
    res.json({ classId, ...counts, teachers: [...new Set(body.value.teachers ?? [])].sort() });
  };

/** GET /roster/classes/:classId */
export const getRosterClass =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "roster:read");
    const classId = classIdOf(req.params.classId);
    const cls = await ctx.roster.getClass(classId);
    if (cls === undefined) throw noRosterError(classId);
    res.json({ ...cls, updatedAt: cls.updatedAt.toISOString() });
  };

/** DELETE /roster/classes/:classId */
export const deleteRosterClass =
  (ctx: ServingContext): RequestHandler =>
  async (req, res) => {
    await ctx.principal(req, "roster:write");
    const classId = classIdOf(req.params.classId);
    if (!(await ctx.roster.removeClass(classId))) throw noRosterError(classId);
    res.json({ classId, deleted: true });
  };

const str = { type: "string" };
const { $id: _id, ...rosterBody } = ROSTER_CLASS_SCHEMA;

export const ROSTER_COMPONENTS: Record<string, unknown> = {
  RosterClassBody: rosterBody,
  RosterClassPut: {
    type: "object",
    required: ["classId", "students", "teachers"],
    properties: {
      classId: str,
      students: { type: "integer", description: "Distinct students now on the roster" },
      teachers: { type: "array", items: str },
    },
  },
  RosterClass: {
    type: "object",
    required: ["classId", "studentKeys", "teacherIds", "updatedAt", "updatedBy", "source"],
    properties: {
      classId: str,
      studentKeys: { type: "array", items: str, description: "Pseudonyms (raw ids are never stored)" },
      teacherIds: { type: "array", items: str },
      updatedAt: { type: "string", format: "date-time" },
      updatedBy: { type: "string", description: "sub of the token (or cli) that loaded it" },
      source: { type: "string", description: "api, or the file loaded by `mastery roster load`" },
    },
  },
  RosterClassDeleted: {
    type: "object",
    required: ["classId", "deleted"],
    properties: { classId: str, deleted: { type: "boolean" } },
  },
};

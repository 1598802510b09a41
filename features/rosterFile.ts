/**
 * Class roster files: the LMS's class lists as CSV (or TSV), one row per (class, student) and/or
 * (class, teacher):
 *
 *   class_id,student_id,teacher_id
 *   cls1,stu-17,
 *   cls1,stu-18,
 *   cls1,,T1
 *
 * Raw student ids are pseudonymized as each row is read (the same HMAC key as ingest); only the
 * student_keys leave this module. teacher_id (optional column) is the teacher's token sub.
 * A roster decides who may see which student, so a file with any bad row is refused whole.
 */
import type { Pseudonymizer } from "./pseudonymize.ts";

/** Longest class, student or teacher id accepted (characters). */
export const ROSTER_ID_MAX_LENGTH = 256;
/** Most students in one class of one PUT /roster request. */
export const ROSTER_MAX_STUDENTS = 10_000;
/** Most teachers named for one class. */
export const ROSTER_MAX_TEACHERS = 100;

export interface RosterRowError {
  /** 1-based line of the file (the header is line 1). */
  line: number;
  reason: string;
}

export interface ParsedRoster {
  /** classId -> student keys and teacher ids, in file order, without repeats. */
  classes: Map<string, { studentKeys: string[]; teacherIds: string[] }>;
  rows: number;
  errors: RosterRowError[];
}

export class RosterFileError extends Error {
  readonly code = "ROSTER_FILE";
  constructor(message: string) {
    super(message);
    this.name = "RosterFileError";
  }
}

/** Why an id is not acceptable, or null when it is. Never echoes the value (it may be a student id). */
export function rosterIdProblem(value: string, field: string): string | null {
  if (value === "") return `${field} is empty`;
  if (value.length > ROSTER_ID_MAX_LENGTH)
    return `${field} is longer than ${ROSTER_ID_MAX_LENGTH} characters (${value.length})`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL and other control characters are what we reject
  if (/[\u0000-\u001f\u007f]/.test(value)) return `${field} contains a control character`;
  if (/[\ud800-\udfff]/.test(value.replace(/[\ud800-\udbff][\udc00-\udfff]/g, "")))
    return `${field} contains a lone surrogate`;
  return null;
}

/**
 * Parses roster CSV text (delimiter "," or "\t") and pseudonymizes student ids at once.
 * Throws RosterFileError for an empty or binary file or a header without the required columns;
 * bad rows are returned in `errors` (the caller refuses the file when there are any).
 */
export function parseRosterCsv(
  text: string,
  pseudonymizer: Pseudonymizer,
  opts: { name?: string; delimiter?: "," | "\t" } = {},
): ParsedRoster {
  const name = opts.name ?? "roster";
  if (text.trim() === "")
    throw new RosterFileError(`${name} is empty: expected a header class_id,student_id[,teacher_id]`);
  if (text.includes("\u0000") || text.includes("\ufffd"))
    throw new RosterFileError(`${name} is not a UTF-8 text CSV file (binary or badly encoded bytes)`);
  const records = csvRecords(text.replace(/^\ufeff/, ""), opts.delimiter ?? ",");
  const header = records[0]!.fields.map((h) => h.trim().toLowerCase());
  const col = (n: string) => header.indexOf(n);
  const [ci, si, ti] = [col("class_id"), col("student_id"), col("teacher_id")];
  if (ci < 0 || (si < 0 && ti < 0)) {
    throw new RosterFileError(
      `${name}: header must name class_id and student_id (teacher_id optional); found ${header.slice(0, 10).join(",") || "(nothing)"}`,
    );
  }
  const classes: ParsedRoster["classes"] = new Map();
  const errors: RosterRowError[] = [];
  let rows = 0;
  for (const r of records.slice(1)) {
    if (r.fields.length === 1 && r.fields[0] === "") continue; // blank line
    rows++;
    if (r.fields.length !== header.length) {
      errors.push({ line: r.line, reason: `expected ${header.length} fields, found ${r.fields.length}` });
      continue;
    }
    const classId = r.fields[ci]!.trim();
    const studentId = si >= 0 ? r.fields[si]!.trim() : "";
    const teacherId = ti >= 0 ? r.fields[ti]!.trim() : "";
    const problem =
      rosterIdProblem(classId, "class_id") ??
      (studentId === "" && teacherId === ""
        ? ti >= 0
          ? "student_id and teacher_id are both empty"
          : "student_id is empty"
        : null) ??
      (studentId !== "" ? rosterIdProblem(studentId, "student_id") : null) ??
      (teacherId !== "" ? rosterIdProblem(teacherId, "teacher_id") : null);
    if (problem !== null) {
      errors.push({ line: r.line, reason: problem });
      continue;
    }
    const c = classes.get(classId) ?? { studentKeys: [], teacherIds: [] };
    classes.set(classId, c);
    if (studentId !== "") c.studentKeys.push(pseudonymizer.studentKey(studentId));
    if (teacherId !== "") c.teacherIds.push(teacherId);
  }
  for (const c of classes.values()) {
    c.studentKeys = [...new Set(c.studentKeys)];
    c.teacherIds = [...new Set(c.teacherIds)];
  }
  return { classes, rows, errors };
}

/** RFC 4180 records: quoted fields may hold delimiters, quotes ("") and line breaks. */
function csvRecords(text: string, delimiter: string): { line: number; fields: string[] }[] {
  const out: { line: number; fields: string[] }[] = [];
  let fields: string[] = [];
  let field = "";
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === "\n") line++;
        field += ch;
      }
    } else if (ch === '"' && field === "") quoted = true;
    else if (ch === delimiter) {
      fields.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      fields.push(field);
      out.push({ line: recordLine, fields });
      fields = [];
      field = "";
      recordLine = ++line;
    } else field += ch;
  }
  if (field !== "" || fields.length > 0) {
    fields.push(field);
    out.push({ line: recordLine, fields });
  }
  return out;
}

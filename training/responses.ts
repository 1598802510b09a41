import { readFileSync } from "node:fs";
import {
  LABEL_ENCODINGS,
  nonTextReason,
  parseLabel,
  parseTimeMs,
  type RowCounts,
  RowReport,
  type SkipPolicy,
  showValue,
  TIME_ENCODINGS,
} from "../features/fileRows.ts";

/** Which file columns hold what; `user`, `skill` and `correct` are required. */
export interface ResponseColumns {
  user: string;
  skill: string;
  correct: string;
  item?: string;
  order?: string;
  /**
   * Event time (epoch seconds, epoch milliseconds or ISO 8601): kept as ResponseLog.time and used for
   * the day-window attempt features; rows of a user are ordered by it when no order column is given.
   */
  time?: string;
}

/**
 * A response log in columnar form, rows grouped by user (users in order of first appearance) and,
 * within a user, in file order or by the `order` column (stable). Ids are dense integers indexing
 * the *Names arrays.
 */
export interface ResponseLog {
  n: number;
  user: Int32Array;
  skill: Int32Array;
  /** -1 where the file has no item column. */
  item: Int32Array;
  correct: Uint8Array;
  userNames: string[];
  skillNames: string[];
  itemNames: string[];
  /** Row offsets of each user's block: user u spans [userStart[u], userStart[u+1]). */
  userStart: Int32Array;
  /** Event time in ms since the epoch per row (the `time` column role), non-decreasing within a user. */
  time?: Float64Array;
}

export class ResponseDataError extends Error {
  readonly code = "RESPONSE_DATA";
  constructor(message: string) {
    super(message);
    this.name = "ResponseDataError";
  }
}

/** The dense index of `k` in `m` (the next free one the first time `k` is seen): how logs name users, skills, items. */
export function intern(m: Map<string, number>, k: string): number {
  let v = m.get(k);
  if (v === undefined) {
    v = m.size;
    m.set(k, v);
  }
  return v;
}

/** Parses "user=COL,skill=COL,correct=COL[,item=COL][,order=COL][,time=COL]". */
export function parseResponseColumns(spec: string): ResponseColumns {
  const map = new Map<string, string>();
  for (const part of spec.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0)
      throw new ResponseDataError(
        `--columns: expected name=COLUMN, got "${part}" (e.g. user=user_id,skill=skill_name,correct=correct)`,
      );
    const key = part.slice(0, eq).trim();
    if (!["user", "skill", "correct", "item", "order", "time"].includes(key)) {
      throw new ResponseDataError(
        `--columns: unknown role "${key}"; roles are user, skill, correct, item, order, time`,
      );
    }
    map.set(key, part.slice(eq + 1).trim());
  }
  for (const req of ["user", "skill", "correct"]) {
    if (!map.has(req))
      throw new ResponseDataError(
        `--columns: missing ${req}=COLUMN (e.g. user=user_id,skill=skill_name,correct=correct)`,
      );
  }
  const cols: ResponseColumns = {
    user: map.get("user")!,
    skill: map.get("skill")!,
    correct: map.get("correct")!,
  };
  const item = map.get("item");
  const order = map.get("order");
  if (item !== undefined) cols.item = item;
  if (order !== undefined) cols.order = order;
  const time = map.get("time");
  if (time !== undefined) cols.time = time;
  return cols;
}

/** Separator from the flag, else tab when the header line holds a tab, else comma. */
export function detectSeparator(headerLine: string, flag?: string): string {
  if (flag !== undefined) return flag === "\\t" || flag === "tab" ? "\t" : flag;
  return headerLine.includes("\t") ? "\t" : ",";
}

/** How loadResponses treats unusable rows: the skip policy, and who hears the counts when reading succeeds. */
export interface ReadOptions extends SkipPolicy {
  onRows?: (counts: RowCounts) => void;
}

/**
 * Loads a delimited response file. Rows that cannot be used (too few fields, no user or skill, a label that is
 * not one of LABEL_ENCODINGS, an order value that is neither a number nor a time) are skipped and counted by
 * reason (pyBKT drops rows without a skill in the same way); when more than the policy's share (default 1%) is
 * skipped, or none is usable, it throws TooManySkippedError naming the reasons with line numbers. The order
 * column takes numbers or times (TIME_ENCODINGS).
 */
export function loadResponses(
  path: string,
  columns: ResponseColumns,
  sep?: string,
  read: ReadOptions = {},
): ResponseLog & { skipped: number; rows: RowCounts } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new ResponseDataError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const bad = nonTextReason(bytes);
  if (bad === "empty")
    throw new ResponseDataError(`${path} is empty: expected a CSV/TSV response log with a header line`);
  if (bad === "binary")
    throw new ResponseDataError(
      `${path} is not a text file (binary content): expected a CSV/TSV response log with a header line`,
    );
  const text = bytes.toString("utf8");
  let lineEnd = text.indexOf("\n");
  if (lineEnd < 0) lineEnd = text.length;
  const header = text
    .slice(0, lineEnd)
    .replace(/\r$/, "")
    .replace(/^\uFEFF/, "");
  const separator = detectSeparator(header, sep);
  const names = header.split(separator).map((h) => h.trim());
  const idx = (col: string | undefined): number => {
    if (col === undefined) return -1;
    const i = names.indexOf(col);
    if (i < 0)
      throw new ResponseDataError(
        `column "${col}" not found in ${path}; the header has: ${names.join(", ")}`,
      );
    return i;
  };
  const iUser = idx(columns.user);
  const iSkill = idx(columns.skill);
  const iCorrect = idx(columns.correct);
  const iItem = idx(columns.item);
  const iOrder = idx(columns.order);
  const iTime = idx(columns.time);
  const needFields = Math.max(iUser, iSkill, iCorrect, iItem, iOrder, iTime) + 1;

  const userIds = new Map<string, number>();
  const skillIds = new Map<string, number>();
  const itemIds = new Map<string, number>();
  const rawUser: number[] = [];
  const rawSkill: number[] = [];
  const rawItem: number[] = [];
  const rawCorrect: number[] = [];
  const rawOrder: number[] = [];
  const rawTime: number[] = [];
  const report = new RowReport(path);
  const notLabel = `column "${columns.correct}" (correct) is not a label (${LABEL_ENCODINGS})`;
  const notOrder = `column "${columns.order}" (order) is neither a number nor a time (${TIME_ENCODINGS})`;
  const notTime = `column "${columns.time}" (time) is not a time (${TIME_ENCODINGS})`;

  let pos = lineEnd + 1;
  let lineNo = 1;
  while (pos < text.length) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    const line = text.slice(pos, end).replace(/\r$/, "");
    pos = end + 1;
    lineNo++;
    if (line.length === 0) continue;
    const f = line.split(separator);
    if (f.length < needFields) {
      report.skip(
        lineNo,
        `row has fewer fields than the header needs (separator ${JSON.stringify(separator)})`,
        `${f.length} of ${names.length}`,
      );
      continue;
    }
    const user = f[iUser]!.trim();
    if (user === "") {
      report.skip(lineNo, `column "${columns.user}" (user) is empty`, '""');
      continue;
    }
    const skill = f[iSkill]!.trim();
    if (skill === "" || skill.toLowerCase() === "nan") {
      report.skip(lineNo, `column "${columns.skill}" (skill) is empty`, showValue(skill));
      continue;
    }
    const cv = parseLabel(f[iCorrect]!);
    if (cv === undefined) {
      report.skip(lineNo, notLabel, showValue(f[iCorrect]));
      continue;
    }
    let order = 0;
    if (iOrder >= 0) {
      const o = f[iOrder]!.trim();
      // Numbers keep their order (epoch seconds and milliseconds are put on one scale); ISO times become ms.
      order = parseTimeMs(o) ?? Number.NaN;
      if (!Number.isFinite(order)) {
        report.skip(lineNo, notOrder, showValue(o));
        continue;
      }
    }
    let time = Number.NaN;
    if (iTime >= 0) {
      const t = f[iTime]!.trim();
      time = parseTimeMs(t) ?? Number.NaN;
      if (!Number.isFinite(time)) {
        report.skip(lineNo, notTime, showValue(t));
        continue;
      }
    }
    report.use();
    if (iTime >= 0) rawTime.push(time);
    rawUser.push(intern(userIds, user));
    rawSkill.push(intern(skillIds, skill));
    rawItem.push(iItem >= 0 ? intern(itemIds, f[iItem]!.trim()) : -1);
    rawCorrect.push(cv);
    if (iOrder >= 0) rawOrder.push(order);
  }
  report.enforce(read);
  const rowCounts = report.counts();
  read.onRows?.(rowCounts);
  const skipped = rowCounts.skipped;

  const n = rawUser.length;
  // Group rows by user (first-appearance order), keeping file order (or the order column) inside a user.
  const rows = new Int32Array(n);
  for (let i = 0; i < n; i++) rows[i] = i;
  const sorted = Array.from(rows).sort((a, b) => {
    const du = rawUser[a]! - rawUser[b]!;
    if (du !== 0) return du;
    if (iOrder >= 0) {
      const dO = rawOrder[a]! - rawOrder[b]!;
      if (dO !== 0) return dO;
    } else if (iTime >= 0) {
      const dT = rawTime[a]! - rawTime[b]!;
      if (dT !== 0) return dT;
    }
    return a - b;
  });
  const log: ResponseLog & { skipped: number; rows: RowCounts } = {
    n,
    user: new Int32Array(n),
    skill: new Int32Array(n),
    item: new Int32Array(n),
    correct: new Uint8Array(n),
    userNames: [...userIds.keys()],
    skillNames: [...skillIds.keys()],
    itemNames: [...itemIds.keys()],
    userStart: new Int32Array(userIds.size + 1),
    skipped,
    rows: rowCounts,
  };
  if (iTime >= 0) log.time = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const r = sorted[k]!;
    if (log.time !== undefined) log.time[k] = rawTime[r]!;
    log.user[k] = rawUser[r]!;
    log.skill[k] = rawSkill[r]!;
    log.item[k] = rawItem[r]!;
    log.correct[k] = rawCorrect[r]!;
  }
  let u = -1;
  for (let k = 0; k < n; k++) {
    while (u < log.user[k]!) log.userStart[++u] = k;
  }
  while (u < userIds.size) log.userStart[++u] = n;
  return log;
}

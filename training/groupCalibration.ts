import { readFileSync } from "node:fs";
import {
  LABEL_ENCODINGS,
  nonTextReason,
  parseLabel,
  type RowCounts,
  RowReport,
  type SkipPolicy,
  showValue,
} from "../features/fileRows.ts";
import { ece, type ReliabilityBin, reliability } from "../models/metrics.ts";
import { detectSeparator } from "./responses.ts";

/**
 * Calibration per group (school, grade, topic/skill, ...): for each group column, the expected calibration
 * error and the reliability-diagram bins of every group with at least `minGroupSize` rows, next to the
 * overall figures. A model can be well calibrated overall and badly calibrated for one school or skill;
 * the promotion gate and the model report need those per-group numbers.
 *
 * `groupCalibration` is pure (arrays in, report out); `readPredictionsCsv` and `formatCalibrationTable` are
 * the edges used by `mastery calibration-report`.
 */

export class GroupCalibrationError extends Error {
  readonly code = "GROUP_CALIBRATION";
  override readonly name = "GroupCalibrationError";
}

/** One grouping: a dense group id per row and the id's display name. */
export interface GroupColumn {
  name: string;
  ids: ArrayLike<number>;
  labels: readonly string[];
}

export interface GroupCalibrationOptions {
  /** Equal-width bins of [0, 1] for ECE and the reliability diagram. */
  bins: number;
  /** Groups with fewer rows are counted in `skipped` but not reported (their ECE is mostly noise). */
  minGroupSize: number;
}

export const DEFAULT_GROUP_CALIBRATION: Readonly<GroupCalibrationOptions> = { bins: 10, minGroupSize: 50 };

export interface CalibrationSummary {
  n: number;
  meanPredicted: number;
  observedRate: number;
  ece: number;
  bins: ReliabilityBin[];
}

export interface GroupCalibration extends CalibrationSummary {
  group: string;
}

export interface GroupColumnReport {
  column: string;
  nGroups: number;
  /** Groups reported (n >= minGroupSize), sorted by ECE, worst first. */
  groups: GroupCalibration[];
  skipped: { groups: number; rows: number };
  /** Row-weighted mean of the reported groups' ECE, and the largest one. */
  weightedEce: number;
  maxEce: number;
}

export interface CalibrationReport {
  options: GroupCalibrationOptions;
  overall: CalibrationSummary;
  columns: GroupColumnReport[];
}

function summary(y: ArrayLike<number>, p: ArrayLike<number>, bins: number): CalibrationSummary {
  let sp = 0;
  let sy = 0;
  for (let i = 0; i < y.length; i++) {
    sp += p[i]!;
    sy += y[i]!;
  }
  const n = y.length;
  return {
    n,
    meanPredicted: n > 0 ? sp / n : Number.NaN,
    observedRate: n > 0 ? sy / n : Number.NaN,
    ece: n > 0 ? ece(y, p, bins) : Number.NaN,
    bins: reliability(y, p, bins),
  };
}

/** Per-group and overall calibration of probabilities `p` for 0/1 labels `y`. */
export function groupCalibration(
  y: ArrayLike<number>,
  p: ArrayLike<number>,
  columns: readonly GroupColumn[],
  options: Partial<GroupCalibrationOptions> = {},
): CalibrationReport {
  const opts = { ...DEFAULT_GROUP_CALIBRATION, ...options };
  if (!Number.isInteger(opts.bins) || opts.bins < 1)
    throw new GroupCalibrationError(`bins must be an integer >= 1 (got ${opts.bins})`);
  if (!Number.isInteger(opts.minGroupSize) || opts.minGroupSize < 1)
    throw new GroupCalibrationError(`minGroupSize must be an integer >= 1 (got ${opts.minGroupSize})`);
  const n = y.length;
  if (p.length !== n) throw new GroupCalibrationError(`${n} labels but ${p.length} predictions`);
  for (let i = 0; i < n; i++) {
    const v = p[i]!;
    if (!(v >= 0 && v <= 1))
      throw new GroupCalibrationError(`prediction ${i} is ${v}; probabilities must be in [0, 1]`);
    if (y[i] !== 0 && y[i] !== 1)
      throw new GroupCalibrationError(`label ${i} is ${y[i]}; labels must be 0 or 1`);
  }
  const report: CalibrationReport = { options: opts, overall: summary(y, p, opts.bins), columns: [] };
  for (const col of columns) {
    if (col.ids.length !== n)
      throw new GroupCalibrationError(
        `group column ${col.name} has ${col.ids.length} rows; labels have ${n}`,
      );
    const k = col.labels.length;
    // Counting sort of rows by group id, so each group's rows are one contiguous slice.
    const count = new Int32Array(k + 1);
    for (let i = 0; i < n; i++) {
      const g = col.ids[i]!;
      if (!(g >= 0 && g < k && Number.isInteger(g)))
        throw new GroupCalibrationError(`group column ${col.name}: row ${i} has id ${g} outside 0..${k - 1}`);
      count[g + 1]!++;
    }
    for (let g = 0; g < k; g++) count[g + 1]! += count[g]!;
    const start = Int32Array.from(count);
    const ys = new Float64Array(n);
    const ps = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const at = count[col.ids[i]!]!++;
      ys[at] = y[i]!;
      ps[at] = p[i]!;
    }
    const groups: GroupCalibration[] = [];
    let skippedGroups = 0;
    let skippedRows = 0;
    let nonEmpty = 0;
    for (let g = 0; g < k; g++) {
      const size = start[g + 1]! - start[g]!;
      if (size === 0) continue;
      nonEmpty++;
      if (size < opts.minGroupSize) {
        skippedGroups++;
        skippedRows += size;
        continue;
      }
      const s = summary(
        ys.subarray(start[g]!, start[g + 1]!),
        ps.subarray(start[g]!, start[g + 1]!),
        opts.bins,
      );
      groups.push({ group: col.labels[g]!, ...s });
    }
    groups.sort((a, b) => b.ece - a.ece || a.group.localeCompare(b.group));
    const reportedRows = groups.reduce((s, g) => s + g.n, 0);
    report.columns.push({
      column: col.name,
      nGroups: nonEmpty,
      groups,
      skipped: { groups: skippedGroups, rows: skippedRows },
      weightedEce: reportedRows > 0 ? groups.reduce((s, g) => s + g.n * g.ece, 0) / reportedRows : Number.NaN,
      maxEce: groups.length > 0 ? groups[0]!.ece : Number.NaN,
    });
  }
  return report;
}

/** Dense ids for string keys, in order of first appearance. */
export function denseIds(keys: readonly string[]): { ids: Int32Array; labels: string[] } {
  const index = new Map<string, number>();
  const ids = new Int32Array(keys.length);
  keys.forEach((key, i) => {
    let id = index.get(key);
    if (id === undefined) {
      id = index.size;
      index.set(key, id);
    }
    ids[i] = id;
  });
  return { ids, labels: [...index.keys()] };
}

/**
 * Reads a CSV/TSV of scored rows (no quoted fields): label column (0/1, true/false, yes/no,
 * correct/incorrect), score column (probability) and the group columns, e.g. a generated data set's
 * school_id, grade, topic_id next to a model's predictions. Unusable rows are skipped and reported by
 * reason (features/fileRows.ts); more than the policy's share (default 1%) is an error.
 */
export function readPredictionsCsv(
  path: string,
  spec: { label: string; score: string; groups: readonly string[]; sep?: string },
  read: SkipPolicy & { onRows?: (c: RowCounts) => void } = {},
): { y: Float64Array; p: Float64Array; columns: GroupColumn[] } {
  const bytes = readFileSync(path);
  const bad = nonTextReason(bytes);
  if (bad !== undefined)
    throw new GroupCalibrationError(
      `${path} is ${bad === "empty" ? "empty" : "not a text file (binary content)"}; expected a CSV with a header row`,
    );
  const lines = bytes.toString("utf8").split(/\r?\n/);
  const sep = detectSeparator(lines[0]!, spec.sep);
  const header = lines[0]!.split(sep).map((h) => h.trim());
  const col = (name: string): number => {
    const c = header.indexOf(name);
    if (c < 0)
      throw new GroupCalibrationError(`${path} has no column "${name}"; columns: ${header.join(", ")}`);
    return c;
  };
  const yc = col(spec.label);
  const pc = col(spec.score);
  const gcs = spec.groups.map(col);
  const report = new RowReport(path);
  const y: number[] = [];
  const p: number[] = [];
  const keys = gcs.map(() => [] as string[]);
  for (let r = 1; r < lines.length; r++) {
    if (lines[r] === "") continue;
    const cells = lines[r]!.split(sep);
    const lab = parseLabel(cells[yc] ?? "");
    const sc = Number(cells[pc]);
    if (lab === undefined) {
      report.skip(
        r + 1,
        `column "${spec.label}" (label) is not a label (${LABEL_ENCODINGS})`,
        showValue(cells[yc]),
      );
      continue;
    }
    if (!(sc >= 0 && sc <= 1)) {
      report.skip(
        r + 1,
        `column "${spec.score}" (score) is not a probability in [0, 1]`,
        showValue(cells[pc]),
      );
      continue;
    }
    report.use();
    y.push(lab);
    p.push(sc);
    gcs.forEach((c, j) => {
      keys[j]!.push((cells[c] ?? "").trim());
    });
  }
  report.enforce(read);
  read.onRows?.(report.counts());
  return {
    y: Float64Array.from(y),
    p: Float64Array.from(p),
    columns: spec.groups.map((name, j) => ({ name, ...denseIds(keys[j]!) })),
  };
}

const fmt = (v: number, digits = 4): string => (Number.isNaN(v) ? "-" : v.toFixed(digits));

/** Plain-text table: overall line, then per column its groups (worst ECE first, at most `maxGroups`). */
export function formatCalibrationTable(report: CalibrationReport, maxGroups = 20): string {
  const o = report.overall;
  const out: string[] = [
    `overall: n=${o.n} mean predicted=${fmt(o.meanPredicted)} observed=${fmt(o.observedRate)} ECE=${fmt(o.ece)} (${report.options.bins} bins)`,
  ];
  for (const c of report.columns) {
    out.push(
      "",
      `by ${c.column}: ${c.groups.length} of ${c.nGroups} groups with n >= ${report.options.minGroupSize}` +
        ` (skipped ${c.skipped.groups} groups, ${c.skipped.rows} rows); weighted ECE=${fmt(c.weightedEce)}, max ECE=${fmt(c.maxEce)}`,
    );
    const w = Math.max(5, ...c.groups.slice(0, maxGroups).map((g) => g.group.length));
    out.push(
      `  ${"group".padEnd(w)}  ${"n".padStart(8)}  predicted  observed     ECE  reliability (observed per bin)`,
    );
    for (const g of c.groups.slice(0, maxGroups)) {
      const diagram = g.bins.map((b) => (b.count > 0 ? fmt(b.observedRate, 2) : "  - ")).join(" ");
      out.push(
        `  ${g.group.padEnd(w)}  ${String(g.n).padStart(8)}  ${fmt(g.meanPredicted).padStart(9)}  ${fmt(g.observedRate).padStart(8)}  ${fmt(g.ece).padStart(6)}  ${diagram}`,
      );
    }
    if (c.groups.length > maxGroups)
      out.push(`  ... ${c.groups.length - maxGroups} more groups (see --json)`);
  }
  return `${out.join("\n")}\n`;
}

/**
 * Reading rows from a user's file honestly: the value encodings every file reader accepts (labels, times),
 * and the account of rows read / used / skipped with the reasons and the first few examples by line number,
 * with the rule that too many unusable rows is an error unless the caller allows it. Shared by the
 * response-log loader (train, evaluate, calibration-report, models promote, onnx check), roster files and
 * ingest, so every command reports the same way. Pure: no I/O.
 */

/** Default share of unusable rows above which reading fails (unless allowed): 1%. */
export const DEFAULT_MAX_SKIP_FRACTION = 0.01;
/** Examples kept per reason. */
const EXAMPLES = 3;

const TRUE_LABELS = new Set(["1", "1.0", "true", "t", "yes", "y", "correct"]);
const FALSE_LABELS = new Set(["0", "0.0", "false", "f", "no", "n", "incorrect", "wrong"]);

/** 0/1, true/false, t/f, yes/no, y/n, correct/incorrect (any case, surrounding spaces ignored); else undefined. */
export function parseLabel(raw: string): 0 | 1 | undefined {
  const v = raw.trim().toLowerCase();
  if (TRUE_LABELS.has(v)) return 1;
  if (FALSE_LABELS.has(v)) return 0;
  return undefined;
}

export const LABEL_ENCODINGS = "0/1, true/false, yes/no or correct/incorrect";

/** Epoch numbers below this are seconds, at or above it milliseconds (1e11 s is the year 5138; 1e11 ms is 1973). */
const EPOCH_MS_FROM = 1e11;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$/i;

/**
 * A time as epoch milliseconds: epoch seconds or milliseconds (told apart by magnitude), or ISO 8601
 * (`2026-09-02T18:47:11Z`, with an offset, or a date alone; without an offset it is read as UTC).
 * Undefined when the value is none of these.
 */
export function parseTimeMs(raw: string): number | undefined {
  const v = raw.trim();
  if (v === "") return undefined;
  if (/^[+-]?\d+(\.\d+)?$/.test(v)) {
    const x = Number(v);
    return Math.abs(x) >= EPOCH_MS_FROM ? x : x * 1000;
  }
  const m = ISO_8601.exec(v);
  if (m === null) return undefined;
  // A time without an offset is read as UTC (Date.parse would take the machine's zone).
  const iso = `${v.replace(" ", "T")}${m[1] !== undefined && m[4] === undefined ? "Z" : ""}`;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}

export const TIME_ENCODINGS = "epoch seconds, epoch milliseconds or ISO 8601";

export interface SkipExample {
  /** 1-based line number in the file (the header is line 1). */
  line: number;
  detail: string;
}

export interface SkipReason {
  reason: string;
  count: number;
  examples: SkipExample[];
}

export interface RowCounts {
  file: string;
  read: number;
  used: number;
  skipped: number;
  reasons: SkipReason[];
}

/** How many unusable rows a reader tolerates. */
export interface SkipPolicy {
  /** Fail when skipped / read exceeds this (default DEFAULT_MAX_SKIP_FRACTION). */
  maxSkipFraction?: number;
  /** Never fail on skipped rows (still report them). */
  allowSkip?: boolean;
}

export class TooManySkippedError extends Error {
  readonly code = "TOO_MANY_SKIPPED";
  constructor(
    message: string,
    readonly counts: RowCounts,
  ) {
    super(message);
    this.name = "TooManySkippedError";
  }
}

/** Counts the rows of one file as they are read: each is used or skipped for a named reason. */
export class RowReport {
  private readonly byReason = new Map<string, SkipReason>();
  read = 0;
  used = 0;

  constructor(readonly file: string) {}

  use(): void {
    this.read++;
    this.used++;
  }

  /** One row not used; `reason` groups rows (keep it free of row values), `detail` shows this row's value. */
  skip(line: number, reason: string, detail: string): void {
    this.read++;
    let r = this.byReason.get(reason);
    if (r === undefined) {
      r = { reason, count: 0, examples: [] };
      this.byReason.set(reason, r);
    }
    r.count++;
    if (r.examples.length < EXAMPLES) r.examples.push({ line, detail });
  }

  get skipped(): number {
    return this.read - this.used;
  }

  counts(): RowCounts {
    const reasons = [...this.byReason.values()].sort((a, b) => b.count - a.count);
    return { file: this.file, read: this.read, used: this.used, skipped: this.skipped, reasons };
  }

  /** Throws TooManySkippedError (with this report) when the policy's threshold is crossed, or nothing is usable. */
  enforce(policy: SkipPolicy = {}): void {
    const max = policy.maxSkipFraction ?? DEFAULT_MAX_SKIP_FRACTION;
    const c = this.counts();
    if (c.read > 0 && c.used === 0) {
      throw new TooManySkippedError(
        `${formatRowCounts(c)}\nno usable rows in ${c.file}: fix the reasons above (check --columns and --sep)`,
        c,
      );
    }
    if (policy.allowSkip === true || c.read === 0 || c.skipped / c.read <= max) return;
    throw new TooManySkippedError(
      `${formatRowCounts(c)}\n${percent(c.skipped, c.read)} of the rows of ${c.file} are unusable (more than ` +
        `${percent(max, 1)}): fix the reasons above, or pass --allow-skip to use the other rows anyway ` +
        "(--max-skip FRACTION changes the threshold)",
      c,
    );
  }
}

function percent(part: number, whole: number): string {
  const p = (100 * part) / whole;
  const digits = p >= 10 ? 1 : 2;
  return `${p.toFixed(digits).replace(/\.?0+$/, "")}%`;
}

/**
 * "FILE: read N rows, used U, skipped S (P%)" and one line per reason with its first examples, e.g.
 * `  58262  column "correct" is not a label (0/1, ...): line 2 "0.5", line 3 "0.25", line 4 "2"`.
 */
export function formatRowCounts(c: RowCounts): string {
  const n = (x: number) => x.toLocaleString("en-US");
  const head = `${c.file}: read ${n(c.read)} rows, used ${n(c.used)}, skipped ${n(c.skipped)}${
    c.read > 0 && c.skipped > 0 ? ` (${percent(c.skipped, c.read)})` : ""
  }`;
  const width = Math.max(0, ...c.reasons.map((r) => n(r.count).length));
  const lines = c.reasons.map(
    (r) =>
      `  ${n(r.count).padStart(width)}  ${r.reason}: ${r.examples.map((e) => `line ${e.line}${e.detail === "" ? "" : ` ${e.detail}`}`).join(", ")}${
        r.count > r.examples.length ? ", ..." : ""
      }`,
  );
  return [head, ...lines].join("\n");
}

/** A cell value for an example: quoted, at most 40 characters, control characters escaped. */
export function showValue(v: string | undefined): string {
  if (v === undefined) return "(missing)";
  const cut = v.length > 40 ? `${v.slice(0, 40)}...` : v;
  return JSON.stringify(cut);
}

/**
 * Why the start of a file cannot be read as text rows, or undefined when it can: "empty" (no bytes, or only
 * white space) or "binary" (NUL bytes or mostly non-text bytes in the first 4 KiB, e.g. a zip or Parquet
 * file passed as CSV). Lets a reader say so in one line instead of printing the bytes as a header.
 */
export function nonTextReason(head: Uint8Array): "empty" | "binary" | undefined {
  const n = Math.min(head.length, 4096);
  let blank = true;
  let odd = 0;
  for (let i = 0; i < n; i++) {
    const b = head[i]!;
    if (b === 0) return "binary";
    if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) blank = false;
    // Control bytes other than tab, LF, CR, form feed and ESC are not text; UTF-8 bytes >= 0x80 are.
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c && b !== 0x1b) odd++;
  }
  if (blank) return "empty";
  return odd > n / 20 ? "binary" : undefined;
}

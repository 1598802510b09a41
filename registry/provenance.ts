import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import type { DataWindow, Json } from "./store.ts";

/** `git rev-parse HEAD` in `cwd`, or "unknown" when git or the repository is unavailable. */
export function gitCommit(cwd = process.cwd()): string {
  try {
    const out = execFileSync("git", ["rev-parse", "HEAD"], { cwd, stdio: ["ignore", "pipe", "ignore"] });
    const sha = out.toString().trim();
    return /^[0-9a-f]{40}$/.test(sha) ? sha : "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * The training-data identity of a file: its sha256 and its number of data rows (lines after the
 * header, not counting a final empty line). Reads in 1 MiB chunks so multi-GB files hash in
 * constant memory.
 */
export function dataFileWindow(path: string): DataWindow {
  const hash = createHash("sha256");
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, "r");
  let newlines = 0;
  let last = -1;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      hash.update(chunk);
      for (let i = 0; i < n; i++) if (chunk[i] === 10) newlines++;
      last = chunk[n - 1]!;
    }
  } finally {
    closeSync(fd);
  }
  // Lines = newlines, plus one if the file does not end with a newline; minus the header line.
  const lines = last === -1 ? 0 : newlines + (last === 10 ? 0 : 1);
  return { file: path, sha256: hash.digest("hex"), rows: Math.max(0, lines - 1) };
}

/** Canonical JSON: object keys sorted recursively, so equal schemas hash equally whatever their key order. */
export function canonicalJson(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object")
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k] as Json)}`)
      .join(",")}}`;
  return JSON.stringify(value);
}

/** "sha256:<hex>" of the canonical JSON of a feature schema (names, types, column roles...). */
export function featureSchemaHash(schema: Json): string {
  return `sha256:${createHash("sha256").update(canonicalJson(schema)).digest("hex")}`;
}

/**
 * The feature schema a model.json describes, by the first field present: featureNames, features,
 * featureSchema, data.columns (the response-log column roles of BKT/Elo). undefined when none.
 */
export function featureSchemaOf(modelJson: unknown): Json | undefined {
  if (typeof modelJson !== "object" || modelJson === null) return undefined;
  const m = modelJson as Record<string, unknown>;
  for (const key of ["featureNames", "features", "featureSchema"])
    if (m[key] !== undefined) return m[key] as Json;
  const data = m.data;
  if (typeof data === "object" && data !== null && (data as Record<string, unknown>).columns !== undefined)
    return { columns: (data as Record<string, unknown>).columns as Json };
  return undefined;
}

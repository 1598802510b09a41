/**
 * The class roster as the server uses it: teacher access checks (serving/auth.ts requireStudent,
 * GET /classes/:classId/mastery) and the PUT/GET/DELETE /roster/classes/:classId routes.
 * Reads of a student's classes are cached for `ttlMs` (default 5 s) and dropped on every write
 * through this server, so a roster change made elsewhere (`mastery roster load` on PostgreSQL)
 * takes effect within the TTL.
 */
import { readFileSync } from "node:fs";
import { basename, extname } from "node:path";
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import { parseRosterCsv, RosterFileError } from "../features/rosterFile.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { PgStore } from "../storage/postgres.ts";
import { type RosterClassRow, RosterStore, type RosterWriteMeta } from "../storage/rosterStore.ts";
import type { RosterClass } from "./auth.ts";
import { LruCache } from "./storeGate.ts";

export const ROSTER_CACHE_TTL_MS = 5000;

export interface RosterAccessOptions {
  store: RosterStore;
  /** Serializes store use (the server's StoreGate for the embedded file). */
  run: <T>(fn: () => Promise<T>) => Promise<T>;
  pseudonymizer: Pseudonymizer;
  ttlMs?: number;
  cacheSize?: number;
}

export class RosterAccess {
  private readonly cache: LruCache<{ at: number; classes: RosterClass[] }>;
  private readonly ttlMs: number;
  private generation = 0;

  constructor(private readonly opts: RosterAccessOptions) {
    this.ttlMs = opts.ttlMs ?? ROSTER_CACHE_TTL_MS;
    this.cache = new LruCache(opts.cacheSize ?? 20_000);
  }

  /** The roster classes of a student, each with the teachers it names. */
  async classesOf(studentKey: string): Promise<RosterClass[]> {
    const hit = this.cache.get(studentKey);
    if (hit !== undefined && Date.now() - hit.at <= this.ttlMs) return hit.classes;
    const gen = this.generation;
    const rows = await this.opts.run(() => this.opts.store.classesOfStudent(studentKey));
    const classes = rows.map((r) => ({ classId: r.classId, teacherIds: new Set(r.teacherIds) }));
    if (gen === this.generation) this.cache.set(studentKey, { at: Date.now(), classes });
    return classes;
  }

  getClass(classId: string): Promise<RosterClassRow | undefined> {
    return this.opts.run(() => this.opts.store.getClass(classId));
  }

  /** Replaces a class's roster with these raw student ids (pseudonymized here) and teacher ids. */
  async putClass(
    classId: string,
    studentIds: readonly string[],
    teacherIds: readonly string[],
    meta: RosterWriteMeta,
  ): Promise<{ students: number; teachers: number }> {
    const studentKeys = [...new Set(studentIds.map((id) => this.opts.pseudonymizer.studentKey(id)))];
    const teachers = [...new Set(teacherIds)];
    await this.opts.run(() =>
      this.opts.store.replace([{ classId, studentKeys, teacherIds: teachers }], meta),
    );
    this.invalidate();
    return { students: studentKeys.length, teachers: teachers.length };
  }

  async removeClass(classId: string): Promise<boolean> {
    const removed = await this.opts.run(() => this.opts.store.remove(classId));
    this.invalidate();
    return removed;
  }

  private invalidate(): void {
    this.generation++;
    this.cache.clear();
  }
}

export interface RosterLoadReport {
  file: string;
  rows: number;
  classes: number;
  students: number;
  teachers: number;
  mode: "replace" | "merge";
}

/**
 * Loads a roster CSV (features/rosterFile.ts) into the store: each class in the file is replaced
 * (or, with merge, added to). Refuses the whole file, naming the first bad lines, when any row is bad.
 */
export async function loadRosterFile(
  store: RosterStore,
  path: string,
  pseudonymizer: Pseudonymizer,
  opts: { merge?: boolean; actor?: string; now?: Date } = {},
): Promise<RosterLoadReport> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new RosterFileError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const parsed = parseRosterCsv(bytes.toString("utf8"), pseudonymizer, {
    name: path,
    delimiter: extname(path).toLowerCase() === ".tsv" ? "\t" : ",",
  });
  if (parsed.errors.length > 0) {
    const first = parsed.errors
      .slice(0, 5)
      .map((e) => `line ${e.line}: ${e.reason}`)
      .join("; ");
    throw new RosterFileError(
      `${path}: ${parsed.errors.length} of ${parsed.rows} rows are unusable, so nothing was loaded (a roster decides who sees which student): ${first}`,
    );
  }
  if (parsed.classes.size === 0)
    throw new RosterFileError(`${path}: no rows after the header; nothing to load`);
  const entries = [...parsed.classes].map(([classId, c]) => ({ classId, ...c }));
  const meta = { actor: opts.actor ?? "cli", source: basename(path), at: opts.now ?? new Date() };
  if (opts.merge === true) await store.merge(entries, meta);
  else await store.replace(entries, meta);
  return {
    file: path,
    rows: parsed.rows,
    classes: entries.length,
    students: new Set(entries.flatMap((e) => e.studentKeys)).size,
    teachers: new Set(entries.flatMap((e) => e.teacherIds)).size,
    mode: opts.merge === true ? "merge" : "replace",
  };
}

/**
 * The roster tables where the deployment keeps them: PostgreSQL when a URL is configured (so
 * `mastery roster load` works while the server runs), else the embedded DuckDB file.
 */
export async function openRosterStore(opts: {
  pgUrl?: string | undefined;
  pgSchema?: string | undefined;
  duck: () => Promise<DuckStore>;
}): Promise<{ roster: RosterStore; location: string; close: () => Promise<void> }> {
  if (opts.pgUrl !== undefined && opts.pgUrl !== "") {
    const pg = await PgStore.open(opts.pgUrl, opts.pgSchema !== undefined ? { schema: opts.pgSchema } : {});
    try {
      return {
        roster: await RosterStore.open(pg, "postgres"),
        location: `PostgreSQL${opts.pgSchema !== undefined ? ` (schema ${opts.pgSchema})` : ""}`,
        close: () => pg.close(),
      };
    } catch (err) {
      await pg.close();
      throw err;
    }
  }
  const duck = await opts.duck();
  return { roster: await RosterStore.open(duck, "duckdb"), location: duck.path, close: async () => {} };
}

/**
 * The class roster as the server uses it: teacher access checks (serving/auth.ts requireStudent,
 * GET /classes/:classId/mastery) and the PUT/GET/DELETE /roster/classes/:classId routes.
 * Reads of a student's classes are cached for `ttlMs` (default 5 s) and dropped on every write
 * through this server, so a roster change made elsewhere (`mastery roster load` on PostgreSQL)
 * takes effect within the TTL.
 */
import type { Pseudonymizer } from "../features/pseudonymize.ts";
import type { RosterClassRow, RosterStore, RosterWriteMeta } from "../storage/rosterStore.ts";
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

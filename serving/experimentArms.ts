import type { Assignment, ExperimentRouter } from "../experiments/router.ts";
import type { Experiment, ExperimentStore } from "../experiments/store.ts";

/**
 * Which experiment arm (and so which registry model) serves a student's scores.
 *
 * Assignment is the pure, sticky hash of experiments/router.ts, so the same student gets the same arm on
 * every call, server and restart; nothing per student is stored. The server only caches the list of
 * active experiments and reloads it at most every `ttlMs` (and at once after POST /experiments).
 *
 * Active = status "running" and startAt <= now < endAt (endAt open when null). Each experiment spans all
 * students (shares sum to 1), so when several are active only the OLDEST (by creation) routes: a student
 * cannot be scored by two models at once, and a newer experiment waits until the older one stops.
 */
export interface ArmAssignment {
  experimentId: string;
  arm: string;
  bucket: number;
  /** The registry reference the arm serves, e.g. "mastery@challenger" or "mastery@4". */
  modelRef: string;
}

export class ExperimentArms {
  private active: { experiment: Experiment; router: ExperimentRouter } | null = null;
  private loadedAt = Number.NEGATIVE_INFINITY;
  private signatureValue = "";

  constructor(
    private readonly experiments: ExperimentStore,
    private readonly now: () => Date = () => new Date(),
    private readonly ttlMs = 5000,
  ) {}

  /**
   * Reloads the active experiment when the cached list is older than ttlMs (or `force`). The caller runs
   * this under the store gate. Returns true when the active experiment or its allocation changed.
   */
  async refresh(force = false): Promise<boolean> {
    const t = this.now().getTime();
    if (!force && t - this.loadedAt < this.ttlMs) return false;
    this.loadedAt = t;
    const all = await this.experiments.list();
    const e = all.find(
      (x) =>
        x.status === "running" && Date.parse(x.startAt) <= t && (x.endAt === null || t < Date.parse(x.endAt)),
    );
    const sig =
      e === undefined
        ? ""
        : `${e.id}|${e.updatedAt}|${JSON.stringify(e.allocation)}|${JSON.stringify(e.arms)}`;
    const changed = sig !== this.signatureValue;
    this.signatureValue = sig;
    if (changed) this.active = e === undefined ? null : { experiment: e, router: this.experiments.router(e) };
    return changed;
  }

  /** The active experiment (after the last refresh), or null. */
  get experiment(): Experiment | null {
    return this.active?.experiment ?? null;
  }

  /** The student's arm in the active experiment, or null when no experiment is active. */
  assign(studentKey: string): ArmAssignment | null {
    if (this.active === null) return null;
    const a: Assignment = this.active.router.assign(studentKey);
    return { experimentId: a.experimentId, arm: a.arm, bucket: a.bucket, modelRef: a.modelRef };
  }
}

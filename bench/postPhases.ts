/**
 * Where a POST /events waits, per request, for the load bench's in-server probe (bench/load.bench.ts).
 *
 * The bench wraps the server's updaters and its invalidate step (nothing in serving/ changes):
 *  - `inner` wraps the IncrementalUpdater the group commit calls once per group: the group's start, end
 *    and its steps' milliseconds (the updater's own `stats.ms`, as deltas over the group);
 *  - `outer` wraps the group commit (ctx.intake.updater) that each request calls: when the request
 *    queued its rows and when its answer came back;
 *  - `invalidate` wraps ctx.invalidate: the cache-invalidation publish the answer waits for.
 * The probe then asks `take(firstEventId, requestStart, finish)` for the request's phases:
 *   check    request to enqueue (body parse, auth, the contract check)
 *   queue    enqueue to its group's start (waiting for the previous group)
 *   record / load / fold / commit / mastery   the group's steps (raw append, state load, fold, state
 *            commit, score write), each from the end of the previous one
 *   resolve  group end to the request's answer from the group commit (its `after` step, the hand-back)
 *   publish  the cache-invalidation publish
 *   respond  the rest, to the response's last byte
 * The group's rows are the requests' own row objects, so a request finds its group by its first row.
 */

import type { ApplyResult, EventUpdater, UpdaterStats } from "../serving/updater.ts";
import type { RawEventRow } from "../storage/rawEventStore.ts";

type Steps = UpdaterStats["ms"];
interface Group {
  start: number;
  end: number;
  steps: Steps;
}
interface Request {
  enqueue: number;
  resolved: number;
  group: Group | undefined;
  publishStart?: number;
  publishEnd?: number;
}

const STEP_NAMES: readonly (keyof Steps)[] = ["record", "load", "replay", "commit", "mastery"];

export class PostPhases {
  private readonly groupOf = new WeakMap<RawEventRow, Group>();
  private readonly byEventId = new Map<string, Request>();
  private readonly byStudent = new Map<string, Request>();

  /** The updater the group commit calls once per group (an IncrementalUpdater: its stats.ms are read). */
  inner(updater: EventUpdater & { stats?: UpdaterStats }): EventUpdater {
    const apply = async (rows: readonly RawEventRow[]): Promise<ApplyResult[]> => {
      const before = { ...(updater.stats?.ms ?? zeroSteps()) };
      const start = performance.now();
      const results = await updater.apply(rows);
      const after = updater.stats?.ms ?? zeroSteps();
      const steps = zeroSteps();
      for (const k of STEP_NAMES) steps[k] = after[k] - before[k];
      const group = { start, end: performance.now(), steps };
      for (const r of rows) this.groupOf.set(r, group);
      return results;
    };
    return wrap(updater, apply);
  }

  /** The group commit each request calls. */
  outer(updater: EventUpdater): EventUpdater {
    const apply = async (rows: readonly RawEventRow[]): Promise<ApplyResult[]> => {
      const enqueue = performance.now();
      const results = await updater.apply(rows);
      const first = rows[0];
      if (first !== undefined) {
        const req: Request = { enqueue, resolved: performance.now(), group: this.groupOf.get(first) };
        this.byEventId.set(first.event_id, req);
        this.byStudent.set(first.student_key, req);
      }
      return results;
    };
    return wrap(updater, apply);
  }

  /** ctx.invalidate, timed (a request's publish is found by its student; the bench's POSTs have one). */
  invalidate(fn: (keys: Iterable<string>) => Promise<void>): (keys: Iterable<string>) => Promise<void> {
    return async (keys) => {
      const list = [...keys];
      const req = list.length === 1 ? this.byStudent.get(list[0]!) : undefined;
      if (req !== undefined) this.byStudent.delete(list[0]!);
      const t0 = performance.now();
      await fn(list);
      if (req !== undefined && req.publishStart === undefined) {
        req.publishStart = t0;
        req.publishEnd = performance.now();
      }
    };
  }

  /** The phases (ms) of the request whose first event is `eventId`, started at `t0`, finished at `t1`. */
  take(eventId: string, t0: number, t1: number): [string, number][] {
    const req = this.byEventId.get(eventId);
    if (req === undefined) return [];
    this.byEventId.delete(eventId);
    const g = req.group;
    const out: [string, number][] = [["check", req.enqueue - t0]];
    if (g !== undefined) {
      out.push(["queue", g.start - req.enqueue]);
      for (const k of STEP_NAMES) out.push([k === "replay" ? "fold" : k, g.steps[k]]);
      out.push(["resolve", req.resolved - g.end]);
    } else out.push(["group", req.resolved - req.enqueue]);
    const publish =
      req.publishStart !== undefined && req.publishEnd !== undefined ? req.publishEnd - req.publishStart : 0;
    out.push(["publish", publish], ["respond", t1 - req.resolved - publish]);
    return out;
  }
}

const zeroSteps = (): Steps => ({
  record: 0,
  load: 0,
  replay: 0,
  commit: 0,
  mastery: 0,
  scoreWrite: 0,
  scoreQueue: 0,
});

function wrap(
  updater: EventUpdater,
  apply: (rows: readonly RawEventRow[]) => Promise<ApplyResult[]>,
): EventUpdater {
  return {
    apply,
    ...(updater.stateStageIdle ? { stateStageIdle: () => updater.stateStageIdle!() } : {}),
    ...(updater.applied ? { applied: (rows: readonly RawEventRow[]) => updater.applied!(rows) } : {}),
  };
}

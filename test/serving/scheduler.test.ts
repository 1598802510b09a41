import { describe, expect, it } from "vitest";
import { type JobOutcome, startScheduler } from "../../serving/schedule.ts";
import { parseScheduleConfig, type ScheduledJob } from "../../serving/scheduleConfig.ts";

describe("serving/schedule startScheduler (the long-lived mode)", () => {
  it("runs each job at its time, one at a time, re-arms for the next day, and stops cleanly", async () => {
    // A clock 300 ms before 02:00 UTC that runs at real speed.
    const t0 = Date.now();
    const base = Date.parse("2026-03-01T01:59:59.700Z");
    const now = () => new Date(base + (Date.now() - t0));
    const config = parseScheduleConfig({ batch: { at: ["02:00"] }, checks: { at: ["02:00", "14:00"] } }, {});
    const started: { job: ScheduledJob; at: number }[] = [];
    let running = 0;
    let maxRunning = 0;
    const outcomes: JobOutcome[] = [];
    const scheduler = startScheduler({
      config,
      jobs: ["batch", "checks"],
      now,
      run: async (job) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        started.push({ job, at: now().getTime() });
        await new Promise((r) => setTimeout(r, 100));
        running--;
        if (job === "checks") throw new Error("checks broke");
        return { job, status: "ok", runId: `run-${job}`, counts: {}, millis: 100 };
      },
      onOutcome: (o) => outcomes.push(o),
    });
    expect(scheduler.next()).toEqual({
      batch: new Date("2026-03-01T02:00:00.000Z"),
      checks: new Date("2026-03-01T02:00:00.000Z"),
    });
    // Both jobs are due 300 ms from now; allow a loaded machine some slack.
    for (let i = 0; i < 100 && outcomes.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(started.map((s) => s.job).sort()).toEqual(["batch", "checks"]);
    for (const s of started) expect(s.at).toBeGreaterThanOrEqual(Date.parse("2026-03-01T02:00:00.000Z"));
    // Never two jobs at once in one scheduler.
    expect(maxRunning).toBe(1);
    // A job that throws is reported as failed; the scheduler keeps going.
    expect(outcomes.find((o) => o.job === "checks")).toMatchObject({
      status: "failed",
      error: "checks broke",
    });
    expect(outcomes.find((o) => o.job === "batch")).toMatchObject({ status: "ok" });
    expect(scheduler.next()).toEqual({
      batch: new Date("2026-03-02T02:00:00.000Z"),
      checks: new Date("2026-03-01T14:00:00.000Z"),
    });
    await scheduler.stop();
  });
  it("a wall clock behind the timer (NTP slew) neither runs a job early nor runs it twice", async () => {
    // Armed 300 ms before 02:00; then the wall clock is set back 80 ms, so the timer fires while now()
    // still says 01:59:59.920.
    const t0 = Date.now();
    const base = Date.parse("2026-03-01T01:59:59.700Z");
    let skew = 0;
    const now = () => new Date(base + (Date.now() - t0) - skew);
    const config = parseScheduleConfig({ batch: { at: ["02:00"] } }, {});
    const started: number[] = [];
    const scheduler = startScheduler({
      config,
      jobs: ["batch"],
      now,
      run: async (job) => {
        started.push(now().getTime());
        return { job, status: "ok", runId: "run", counts: {}, millis: 0 };
      },
    });
    skew = 80;
    for (let i = 0; i < 100 && started.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    // Long enough for a wrongly re-armed same-day run (80 ms later) to happen.
    await new Promise((r) => setTimeout(r, 400));
    await scheduler.stop();
    expect(started).toHaveLength(1);
    expect(started[0]!).toBeGreaterThanOrEqual(Date.parse("2026-03-01T02:00:00.000Z"));
    expect(scheduler.next()).toEqual({ batch: new Date("2026-03-02T02:00:00.000Z") });
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_SCHEDULE,
  loadScheduleConfig,
  nextRunAt,
  parseScheduleConfig,
  parseTimeOfDay,
} from "../../serving/scheduleConfig.ts";

const at = (...t: string[]) => t.map((s, i) => parseTimeOfDay(s, `at[${i}]`));

describe("serving/scheduleConfig", () => {
  it("nextRunAt: later today, tomorrow, the earliest of several, never the instant itself", () => {
    expect(nextRunAt(at("02:00"), new Date("2026-03-01T01:59:59Z")).toISOString()).toBe(
      "2026-03-01T02:00:00.000Z",
    );
    expect(nextRunAt(at("02:00"), new Date("2026-03-01T02:00:00Z")).toISOString()).toBe(
      "2026-03-02T02:00:00.000Z",
    );
    expect(nextRunAt(at("23:30", "06:15"), new Date("2026-03-01T07:00:00Z")).toISOString()).toBe(
      "2026-03-01T23:30:00.000Z",
    );
    expect(nextRunAt(at("23:30", "06:15"), new Date("2026-03-01T23:45:00Z")).toISOString()).toBe(
      "2026-03-02T06:15:00.000Z",
    );
    // Month and year boundaries.
    expect(nextRunAt(at("00:00"), new Date("2026-12-31T12:00:00Z")).toISOString()).toBe(
      "2027-01-01T00:00:00.000Z",
    );
  });

  it("nextRunAt is within 24 h after `after`, at one of the configured times", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ hour: fc.integer({ min: 0, max: 23 }), minute: fc.integer({ min: 0, max: 59 }) }),
          {
            minLength: 1,
            maxLength: 4,
          },
        ),
        fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) }),
        (times, t) => {
          const next = nextRunAt(times, new Date(t)).getTime();
          expect(next).toBeGreaterThan(t);
          expect(next - t).toBeLessThanOrEqual(86_400_000);
          const d = new Date(next);
          expect(d.getUTCSeconds()).toBe(0);
          expect(times.some((x) => x.hour === d.getUTCHours() && x.minute === d.getUTCMinutes())).toBe(true);
        },
      ),
    );
  });

  it("the shipped config/schedule.yaml loads with its documented defaults", () => {
    const c = loadScheduleConfig(DEFAULT_SCHEDULE, {});
    expect(c.batch).toEqual({
      at: [{ hour: 2, minute: 0 }],
      inbox: null,
      bktModel: null,
      eloModel: null,
      servedModel: null,
      full: false,
      features: false,
      compactShare: 0.25,
      compactAfterDays: 7,
    });
    expect(c.checks).toEqual({ at: [{ hour: 3, minute: 0 }], retrain: true });
    expect(c.lock).toEqual({ key: "mastery-schedule", ttlMs: 21_600_000 });
    expect(c.alert.webhooks).toEqual([]);
  });

  it("errors name the key and the fix", () => {
    expect(() => parseScheduleConfig({ batch: { at: "25:00" } }, {})).toThrow(
      /batch\.at\[0\] must be a time "HH:MM" in UTC, 00:00 to 23:59 \(got "25:00"\)/,
    );
    expect(() => parseScheduleConfig({ batch: { at: 200 } }, {})).toThrow(/batch\.at\[0\].*quote it in YAML/);
    expect(() => parseScheduleConfig({ batch: { when: "02:00" } }, {})).toThrow(
      /unknown key batch\.when; allowed: at, inbox/,
    );
    expect(() => parseScheduleConfig({ checks: { at: [] } }, {})).toThrow(
      /checks\.at needs at least one time/,
    );
    expect(() => parseScheduleConfig({ lock: { ttlMs: 5 } }, {})).toThrow(
      /lock\.ttlMs must be an integer >= 1000/,
    );
    expect(() =>
      parseScheduleConfig({ alert: { webhooks: [{ url: "https://x.example/h", secret_env: "NOPE" }] } }, {}),
    ).toThrow(/alert\.webhooks\[0\] needs its signing secret in the environment variable NOPE/);
    expect(
      parseScheduleConfig(
        { alert: { webhooks: [{ url: "https://x.example/h" }] } },
        { MASTERY_WEBHOOK_SECRET: "k" },
      ).alert.webhooks,
    ).toEqual([{ url: "https://x.example/h", secret: "k" }]);
  });
});

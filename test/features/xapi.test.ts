import { describe, expect, it } from "vitest";
import { validateEvent } from "../../features/contracts.ts";
import {
  parseIsoDuration,
  VIDEO_PROGRESS_EXTENSION,
  XAPI_EXTENSION,
  type XapiStatement,
  xapiToEvent,
} from "../../features/xapi.ts";

const base = {
  id: "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
  actor: { objectType: "Agent", account: { homePage: "https://lms.example", name: "stu-42" } },
  timestamp: "2026-01-05T10:00:00+01:00",
} as XapiStatement;

describe("parseIsoDuration", () => {
  it.each([
    ["PT1M5.5S", 65.5],
    ["PT0S", 0],
    ["PT2H", 7200],
    ["P1DT2H3M4S", 86400 + 7200 + 180 + 4],
    ["P2W", 1209600],
    ["PT0.25S", 0.25],
  ])("%s = %d s", (text, seconds) => {
    expect(parseIsoDuration(text)).toBeCloseTo(seconds, 12);
  });
  it.each(["P1Y", "P1M", "PT", "P", "1M5S", "PT-5S", ""])("refuses %j", (text) => {
    expect(parseIsoDuration(text)).toBeUndefined();
  });
});

describe("xapiToEvent", () => {
  it("maps answered to quiz_attempt (topic from contextActivities.parent)", () => {
    const r = xapiToEvent({
      ...base,
      verb: { id: "http://adlnet.gov/expapi/verbs/answered", display: { "en-US": "answered" } },
      object: { id: "https://lms.example/q/17" },
      result: { success: false, duration: "PT1M5.5S" },
      context: {
        contextActivities: {
          parent: [{ id: "https://lms.example/topic/fractions" }],
          grouping: [{ id: "https://lms.example/course/math6" }],
        },
      },
    });
    expect(r).toEqual({
      ok: true,
      value: {
        type: "quiz_attempt",
        event_id: "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
        student_id: "stu-42",
        timestamp: "2026-01-05T10:00:00+01:00",
        topic_id: "https://lms.example/topic/fractions",
        question_id: "https://lms.example/q/17",
        is_correct: false,
        time_spent_sec: 65.5,
      },
    });
    if (r.ok) expect(validateEvent(r.value).ok).toBe(true);
  });

  it("prefers the explicit topic extension, then parent, then grouping", () => {
    const st = (context: XapiStatement["context"]) =>
      xapiToEvent({
        ...base,
        verb: { id: "http://adlnet.gov/expapi/verbs/answered" },
        object: { id: "q" },
        result: { success: true },
        ...(context ? { context } : {}),
      });
    const ext = st({
      contextActivities: { parent: [{ id: "p" }] },
      extensions: { [`${XAPI_EXTENSION}topic_id`]: "explicit" },
    });
    expect(ext.ok && "topic_id" in ext.value && ext.value.topic_id).toBe("explicit");
    const grp = st({ contextActivities: { grouping: [{ id: "g" }] } });
    expect(grp.ok && "topic_id" in grp.value && grp.value.topic_id).toBe("g");
  });

  it("maps completed to assignment with score.scaled * 100 and every parent as a topic", () => {
    const r = xapiToEvent({
      ...base,
      actor: { mbox: "mailto:ana@example.org" },
      verb: { id: "http://adlnet.gov/expapi/verbs/completed" },
      object: { id: "https://lms.example/assignment/3" },
      result: { score: { scaled: 0.85 } },
      context: { contextActivities: { parent: [{ id: "t1" }, { id: "t2" }] } },
    });
    expect(r.ok).toBe(true);
    if (r.ok && r.value.type === "assignment") {
      expect(r.value.score_pct).toBeCloseTo(85, 12);
      expect(r.value.topic_ids).toEqual(["t1", "t2"]);
      expect(r.value.student_id).toBe("mailto:ana@example.org");
      expect(r.value.assignment_id).toBe("https://lms.example/assignment/3");
    }
    const raw = xapiToEvent({
      ...base,
      verb: { display: { "en-GB": "Completed" } },
      object: { id: "a" },
      result: { score: { raw: 7, min: 0, max: 10 } },
      context: { contextActivities: { parent: [{ id: "t1" }] } },
    });
    expect(raw.ok && raw.value.type === "assignment" && raw.value.score_pct).toBeCloseTo(70, 12);
  });

  it("maps experienced to video: progress fraction x 100, duration in seconds", () => {
    const r = xapiToEvent({
      ...base,
      verb: { id: "http://adlnet.gov/expapi/verbs/experienced" },
      object: { id: "https://lms.example/video/9" },
      result: { duration: "PT1M30S", extensions: { [VIDEO_PROGRESS_EXTENSION]: 0.5 } },
      context: { contextActivities: { grouping: [{ id: "t9" }] } },
    });
    expect(r).toEqual({
      ok: true,
      value: {
        type: "video",
        event_id: base.id,
        student_id: "stu-42",
        timestamp: base.timestamp,
        topic_id: "t9",
        video_id: "https://lms.example/video/9",
        watch_pct: 50,
        watch_duration_sec: 90,
      },
    });
  });

  it("rejects unmappable statements naming the field and the reason", () => {
    const unknownVerb = xapiToEvent({ ...base, verb: { id: "http://adlnet.gov/expapi/verbs/attended" } });
    expect(unknownVerb.ok).toBe(false);
    if (!unknownVerb.ok) expect(unknownVerb.issues[0]?.field).toBe("verb");

    const r = xapiToEvent({
      id: "x",
      actor: {},
      verb: { id: "http://adlnet.gov/expapi/verbs/answered" },
      object: { id: "q" },
      result: { duration: "5 minutes" },
      timestamp: "2026-01-05T10:00:00Z",
    });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.issues.map((i) => i.field)).toEqual(["actor", "context", "result.duration", "result.success"]);
      expect(r.issues[2]?.reason).toBe(
        'xapi.result.duration must be an ISO 8601 duration like PT1M5.5S (got "5 minutes")',
      );
    }
  });
});

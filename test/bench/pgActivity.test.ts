import { describe, expect, it } from "vitest";
import { activityLine, meanBackends, statementName } from "../../bench/pgActivity.ts";

describe("bench/pgActivity", () => {
  it("names a statement by its verb and the table it writes, or else reads", () => {
    expect(statementName("BEGIN")).toBe("BEGIN");
    expect(
      statementName("SELECT 1 FROM alert_state a JOIN unnest($1::text[]) AS k(x) USING (x) FOR UPDATE OF a"),
    ).toBe("SELECT alert_state");
    expect(statementName("  UPDATE alert_state a SET below = s.below FROM unnest($1) s")).toBe(
      "UPDATE alert_state",
    );
    expect(statementName("INSERT INTO alerts SELECT a.* FROM unnest($1::text[]) AS a")).toBe("INSERT alerts");
    expect(
      statementName(
        "WITH k AS (SELECT * FROM unnest($1)), moved AS (UPDATE alert_state a SET x = 1) INSERT INTO alerts SELECT 1",
      ),
    ).toBe("WITH..UPDATE alert_state");
    expect(statementName("WITH k AS (SELECT 1) SELECT * FROM student_mastery m JOIN k USING (x)")).toBe(
      "WITH student_mastery",
    );
    // A lock clause is not the write: the first write of the alert check's statement is its UPDATE.
    expect(
      statementName(
        "WITH locked AS (SELECT a.x FROM alert_state a ORDER BY a.x FOR UPDATE OF a), updated AS (UPDATE alert_state a SET y = 1) INSERT INTO alerts SELECT 1",
      ),
    ).toBe("WITH..UPDATE alert_state");
    expect(statementName("SELECT 1 FROM alert_state a FOR UPDATE OF a")).toBe("SELECT alert_state");
    expect(statementName("")).toBe("(none)");
  });

  it("counts a backend on its state, its wait when active (CPU when none) and its statement", () => {
    expect(activityLine({ state: "idle", wait_event: "ClientRead", query: "SELECT 1" })).toBe("idle");
    expect(activityLine({ state: "active", wait_event: null, query: "SELECT * FROM topics" })).toBe(
      "active CPU: SELECT topics",
    );
    expect(
      activityLine({ state: "active", wait_event: "WALSync", query: "INSERT INTO alerts VALUES (1)" }),
    ).toBe("active WALSync: INSERT alerts");
    expect(
      activityLine({
        state: "idle in transaction",
        wait_event: "ClientRead",
        query: "UPDATE alert_state SET x = 1",
      }),
    ).toBe("idle in transaction: UPDATE alert_state");
  });

  it("gives the mean backends per line over the samples, largest first", () => {
    const counts = new Map([
      ["idle", 45],
      ["idle in transaction: BEGIN", 3],
      ["active CPU: SELECT topics", 6],
    ]);
    expect(meanBackends(counts, 5)).toEqual([
      ["idle", 9],
      ["active CPU: SELECT topics", 1.2],
      ["idle in transaction: BEGIN", 0.6],
    ]);
    expect(meanBackends(new Map([["idle", 2]]), 0)).toEqual([["idle", 2]]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";
import { RosterStore } from "../../storage/rosterStore.ts";
import { dumpRows, runRosterScenario } from "./rosterScenario.ts";

let store: DuckStore;
let roster: RosterStore;
const meta = (source: string) => ({ actor: "admin-1", source, at: new Date("2026-03-01T10:00:00Z") });

beforeAll(async () => {
  store = await DuckStore.open(":memory:");
  roster = await RosterStore.open(store, "duckdb");
});
afterAll(() => store.close());

describe("RosterStore (DuckDB)", () => {
  it("replace makes an entry the whole class; other classes are untouched", async () => {
    await roster.replace(
      [
        { classId: "A", studentKeys: ["k1", "k2", "k2"], teacherIds: [] },
        { classId: "B", studentKeys: ["k3"], teacherIds: ["t9", "t1"] },
      ],
      meta("first.csv"),
    );
    // Same keys again in one transaction (delete + re-insert of the same primary keys), k1 dropped.
    await roster.replace(
      [{ classId: "A", studentKeys: ["k2", "k4"], teacherIds: ["t2"] }],
      meta("second.csv"),
    );
    const a = await roster.getClass("A");
    expect(a).toMatchObject({
      studentKeys: ["k2", "k4"],
      teacherIds: ["t2"],
      updatedBy: "admin-1",
      source: "second.csv",
    });
    expect(a?.updatedAt.toISOString()).toBe("2026-03-01T10:00:00.000Z");
    expect((await roster.getClass("B"))?.teacherIds).toEqual(["t1", "t9"]);
    expect(await roster.classesOfStudent("k1")).toEqual([]);
    expect(await roster.classesOfStudent("k3")).toEqual([{ classId: "B", teacherIds: ["t1", "t9"] }]);
    expect(await roster.summary()).toEqual({ classes: 2, students: 3, memberships: 3 });
  });

  it("merge adds without removing; remove drops the class", async () => {
    await roster.merge([{ classId: "A", studentKeys: ["k4", "k5"], teacherIds: [] }], meta("api"));
    expect((await roster.getClass("A"))?.studentKeys).toEqual(["k2", "k4", "k5"]);
    expect((await roster.classesOfStudent("k4")).map((c) => c.classId)).toEqual(["A"]);
    expect(await roster.remove("A")).toBe(true);
    expect(await roster.remove("A")).toBe(false);
    expect(await roster.getClass("A")).toBeUndefined();
    expect(await roster.classesOfStudent("k4")).toEqual([]);
  });

  it("loads a large class in chunks", async () => {
    const keys = Array.from({ length: 1234 }, (_, i) => `key-${String(i).padStart(5, "0")}`);
    await roster.replace([{ classId: "big", studentKeys: keys, teacherIds: [] }], meta("big.csv"));
    expect((await roster.getClass("big"))?.studentKeys).toEqual(keys);
  });

  it("replace and merge over more classes than one statement writes equal the model", async () => {
    const fresh = await DuckStore.open(":memory:");
    try {
      const r = await RosterStore.open(fresh, "duckdb");
      const expected = await runRosterScenario(r);
      const actual = dumpRows(
        await fresh.all("SELECT * FROM roster_classes"),
        await fresh.all("SELECT * FROM roster_students"),
        await fresh.all("SELECT * FROM roster_teachers"),
      );
      expect(actual.classes.length).toBe(1244);
      expect(actual).toEqual(expected);
    } finally {
      fresh.close();
    }
  });
});

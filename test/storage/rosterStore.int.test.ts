/** The roster tables on the shared PostgreSQL (a fresh schema per run), same SQL as on DuckDB. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgStore } from "../../storage/postgres.ts";
import { RosterStore } from "../../storage/rosterStore.ts";
import { PG_URL } from "../serving/streamHarness.ts";
import { dumpRows, runRosterScenario } from "./rosterScenario.ts";

const schema = `roster_${process.pid}_${Date.now().toString(36)}`;
let pg: PgStore | undefined;
let roster: RosterStore;
const reachable = await PgStore.open(PG_URL).then(
  async (s) => {
    await s.close();
    return true;
  },
  () => false,
);
if (!reachable) console.warn(`skipping PostgreSQL roster test: nothing answers at ${PG_URL}`);

describe.skipIf(!reachable)("RosterStore (PostgreSQL)", () => {
  beforeAll(async () => {
    pg = await PgStore.open(PG_URL, { schema });
    roster = await RosterStore.open(pg, "postgres");
  });
  afterAll(async () => {
    await pg?.dropSchema();
    await pg?.close();
  });

  it("replace, merge, read back by student and by class, remove", async () => {
    const at = new Date("2026-03-01T10:00:00Z");
    await roster.replace(
      [
        { classId: "A", studentKeys: ["k1", "k2"], teacherIds: [] },
        { classId: "B", studentKeys: ["k2"], teacherIds: ["t2", "t1"] },
      ],
      { actor: "sis", source: "r.csv", at },
    );
    await roster.replace([{ classId: "A", studentKeys: ["k2", "k3"], teacherIds: [] }], {
      actor: "sis",
      source: "r2.csv",
      at,
    });
    await roster.merge([{ classId: "A", studentKeys: ["k4"], teacherIds: [] }], {
      actor: "api",
      source: "api",
      at,
    });
    expect(await roster.classesOfStudent("k2")).toEqual([
      { classId: "A", teacherIds: [] },
      { classId: "B", teacherIds: ["t1", "t2"] },
    ]);
    expect(await roster.classesOfStudent("k1")).toEqual([]);
    const a = await roster.getClass("A");
    expect(a).toMatchObject({
      studentKeys: ["k2", "k3", "k4"],
      teacherIds: [],
      updatedBy: "api",
      source: "api",
    });
    expect(a?.updatedAt.toISOString()).toBe(at.toISOString());
    expect(await roster.summary()).toEqual({ classes: 2, students: 3, memberships: 4 });
    expect(await roster.remove("B")).toBe(true);
    expect(await roster.classesOfStudent("k2")).toEqual([{ classId: "A", teacherIds: [] }]);
  });

  it("replace and merge over more classes than one statement writes equal the model", async () => {
    const other = await PgStore.open(PG_URL, { schema: `${schema}_big` });
    try {
      const r = await RosterStore.open(other, "postgres");
      const expected = await runRosterScenario(r);
      const actual = dumpRows(
        await other.all("SELECT * FROM roster_classes"),
        await other.all("SELECT * FROM roster_students"),
        await other.all("SELECT * FROM roster_teachers"),
      );
      expect(actual.classes.length).toBe(1244);
      expect(actual).toEqual(expected);
    } finally {
      await other.dropSchema();
      await other.close();
    }
  });
});

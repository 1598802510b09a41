/**
 * A roster write scenario with more classes per call than RosterStore writes per statement (500), run
 * against a store and against a plain in-memory model of replace/merge; both engines' tests compare the two.
 */
import type { RosterEntry, RosterStore, RosterWriteMeta } from "../../storage/rosterStore.ts";

interface ModelClass {
  students: Set<string>;
  teachers: Set<string>;
  meta: RosterWriteMeta;
}

export interface RosterDump {
  classes: string[];
  students: string[];
  teachers: string[];
}

const cls = (i: number) => `c${String(i).padStart(5, "0")}`;
const key = (i: number) => `k${String(i).padStart(6, "0")}`;

/** Runs the writes on `roster` and returns what the model says the three tables must hold, sorted. */
export async function runRosterScenario(roster: RosterStore): Promise<RosterDump> {
  const model = new Map<string, ModelClass>();
  const apply = async (mode: "replace" | "merge", entries: RosterEntry[], meta: RosterWriteMeta) => {
    if (mode === "replace") for (const e of entries) model.delete(e.classId);
    for (const e of entries) {
      const c = model.get(e.classId) ?? { students: new Set(), teachers: new Set(), meta };
      for (const k of e.studentKeys) c.students.add(k);
      for (const t of e.teacherIds) c.teachers.add(t);
      c.meta = meta;
      model.set(e.classId, c);
    }
    await (mode === "replace" ? roster.replace(entries, meta) : roster.merge(entries, meta));
  };
  const meta = (source: string, minute: number): RosterWriteMeta => ({
    actor: `actor-${minute}`,
    source,
    at: new Date(Date.UTC(2026, 2, 1, 10, minute)),
  });
  // 1,234 classes of 3 students, every third with a teacher.
  await apply(
    "replace",
    Array.from({ length: 1234 }, (_, i) => ({
      classId: cls(i),
      studentKeys: [key(3 * i), key(3 * i + 1), key(3 * i + 2)],
      teacherIds: i % 3 === 0 ? [`t${i % 7}`] : [],
    })),
    meta("first.csv", 0),
  );
  // 700 of them replaced (two chunks of deletes) with other students and teachers, one class twice in
  // the same call (both entries' students kept), and 10 new classes.
  const second: RosterEntry[] = Array.from({ length: 700 }, (_, j) => {
    const i = 300 + j;
    return { classId: cls(i), studentKeys: [key(3 * i + 1), key(900_000 + i)], teacherIds: [`t${i % 5}`] };
  });
  second.push({ classId: cls(400), studentKeys: [key(999_999)], teacherIds: [] });
  for (let i = 5000; i < 5010; i++) second.push({ classId: cls(i), studentKeys: [key(i)], teacherIds: [] });
  await apply("replace", second, meta("second.csv", 1));
  // A merge over 600 classes, some of them replaced above.
  await apply(
    "merge",
    Array.from({ length: 600 }, (_, j) => ({
      classId: cls(2 * j),
      studentKeys: [key(500_000 + j)],
      teacherIds: [],
    })),
    meta("api", 2),
  );
  const classes: string[] = [];
  const students: string[] = [];
  const teachers: string[] = [];
  for (const [id, c] of model) {
    classes.push(`${id} ${c.meta.at.toISOString()} ${c.meta.actor} ${c.meta.source}`);
    for (const k of c.students) students.push(`${id} ${k}`);
    for (const t of c.teachers) teachers.push(`${id} ${t}`);
  }
  return { classes: classes.sort(), students: students.sort(), teachers: teachers.sort() };
}

/** The roster tables' rows as the scenario's model lists them (`at` read back as a Date or text). */
export function dumpRows(
  classes: { class_id: string; updated_at: Date | string; updated_by: string; source: string }[],
  students: { class_id: string; student_key: string }[],
  teachers: { class_id: string; teacher_id: string }[],
): RosterDump {
  const iso = (d: Date | string) => (d instanceof Date ? d : new Date(`${d}Z`)).toISOString();
  return {
    classes: classes.map((r) => `${r.class_id} ${iso(r.updated_at)} ${r.updated_by} ${r.source}`).sort(),
    students: students.map((r) => `${r.class_id} ${r.student_key}`).sort(),
    teachers: teachers.map((r) => `${r.class_id} ${r.teacher_id}`).sort(),
  };
}

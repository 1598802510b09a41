import { describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { parseRosterCsv, RosterFileError, rosterIdProblem } from "../../features/rosterFile.ts";

const p = new Pseudonymizer("roster-test-key-0123456789");

describe("parseRosterCsv", () => {
  it("groups rows by class, pseudonymizes student ids at once, keeps teacher ids", () => {
    const text =
      'class_id,student_id,teacher_id\r\ncls1,stu-1,\ncls1,"stu-2",T1\n"cls,2",stu-1,\ncls1,stu-1,\n\n"cls1",,"T""2"\n';
    const r = parseRosterCsv(text, p);
    expect(r.errors).toEqual([]);
    expect(r.rows).toBe(5);
    expect([...r.classes.keys()]).toEqual(["cls1", "cls,2"]);
    expect(r.classes.get("cls1")).toEqual({
      studentKeys: [p.studentKey("stu-1"), p.studentKey("stu-2")],
      teacherIds: ["T1", 'T"2'],
    });
    expect(r.classes.get("cls,2")?.studentKeys).toEqual([p.studentKey("stu-1")]);
    expect(JSON.stringify([...r.classes])).not.toMatch(/stu-/);
  });

  it("reports bad rows by line without echoing ids; a quoted line break counts lines", () => {
    const text = `class_id,student_id\ncls1,"stu\nx"\n,stu-9\ncls1\ncls1,${"s".repeat(300)}\ncls1,ok\ncls1,\n`;
    const r = parseRosterCsv(text, p);
    expect(r.errors).toEqual([
      { line: 2, reason: "student_id contains a control character" },
      { line: 4, reason: "class_id is empty" },
      { line: 5, reason: "expected 2 fields, found 1" },
      { line: 6, reason: "student_id is longer than 256 characters (300)" },
      { line: 8, reason: "student_id is empty" },
    ]);
    expect(r.classes.get("cls1")?.studentKeys).toEqual([p.studentKey("ok")]);
  });

  it("refuses an empty file, a binary file and a header without the columns, each with its own message", () => {
    expect(() => parseRosterCsv("", p, { name: "r.csv" })).toThrow(/r\.csv is empty/);
    expect(() => parseRosterCsv("\u0000\u0001PK\u0003", p)).toThrow(/not a UTF-8 text CSV/);
    expect(() => parseRosterCsv("\ufffd\ufffd,x\n", p)).toThrow(RosterFileError);
    expect(() => parseRosterCsv("klass,student\na,b\n", p)).toThrow(
      /must name class_id and student_id.*klass,student/,
    );
  });

  it("reads TSV and a teacher-only file", () => {
    const r = parseRosterCsv("class_id\tteacher_id\ncls1\tT1\n", p, { delimiter: "\t" });
    expect(r.classes.get("cls1")).toEqual({ studentKeys: [], teacherIds: ["T1"] });
  });
});

describe("rosterIdProblem", () => {
  it("accepts ordinary ids (any script, astral characters) and refuses control characters and lone surrogates", () => {
    expect(rosterIdProblem("Élève-😀-7", "x")).toBeNull();
    expect(rosterIdProblem("a\u007f", "x")).toMatch(/control/);
    expect(rosterIdProblem("a\ud800b", "x")).toMatch(/lone surrogate/);
    expect(rosterIdProblem("", "x")).toBe("x is empty");
  });
});

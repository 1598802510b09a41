/**
 * Files in, honestly (issue 14 item 3), through the real CLI: every command that reads a file reports rows
 * read / used / skipped with reasons, stops when too many are unusable, and says what to do; ingest counts
 * equal the file's rows with one dead letter per rejected row. Spawns `bin/mastery.js` (integration tier).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DuckStore } from "../../storage/duckdb.ts";

const MASTERY = join(import.meta.dirname, "..", "..", "bin", "mastery.js");
const dir = mkdtempSync(join(tmpdir(), "mastery-files-in-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function mastery(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MASTERY_")) env[k] = v;
  const r = spawnSync(process.execPath, [MASTERY, ...args], {
    encoding: "utf8",
    env: { ...env, MASTERY_QUIET: "1" },
    cwd: dir,
  });
  // --demo's warning about the public pseudonym key is not what these tests look at.
  const stderr = r.stderr.replace(/^warning: demo mode: .*\n/m, "");
  return { status: r.status, stdout: r.stdout, stderr };
}

const HEADER =
  "event_id,type,student_id,topic_id,timestamp,school_id,class_id,grade,question_id,is_correct,time_spent_sec,attempt_number,hints_used";
const row = (i: number) =>
  `q-${i},quiz_attempt,stu-${i % 7},t000${i % 3},2026-09-02T10:${String(i % 60).padStart(2, "0")}:00Z,sch1,cls1,9,q${i % 5},${i % 2 === 0},30,1,0`;

async function deadLetters(db: string, source: string): Promise<number[]> {
  const store = await DuckStore.open(db);
  try {
    const rows = await store.all<{ row_number: bigint }>(
      "SELECT row_number FROM dead_letter WHERE source = $s ORDER BY row_number",
      { s: source },
    );
    return rows.map((r) => Number(r.row_number));
  } finally {
    store.close();
  }
}

describe("mastery ingest", () => {
  it("a 2-row ragged CSV: read 2, rejected 2, one dead letter each, exit 3 with the most common reason", async () => {
    const file = join(dir, "ragged.csv");
    writeFileSync(file, `${HEADER}\nq-1,quiz_attempt,stu-1,t0001\n${row(2)},EXTRA\n`);
    const db = join(dir, "ragged.duckdb");
    const r = mastery("ingest", file, "--demo", "--db", db);
    expect(r.stdout).toMatch(/ragged\.csv +accepted +0 +duplicate +0 +rejected +2\n/);
    expect(r.stdout).toContain(`${file}: read 2 rows, used 0, skipped 2 (100%)`);
    expect(r.stdout).toMatch(/MISSING COLUMNS.*: line 2\n/);
    expect(r.stdout).toMatch(/TOO MANY COLUMNS.*: line 3\n/);
    expect(r.stderr).toMatch(
      /error: every row was rejected \(2 rows\); most common reason: \(row\): malformed CSV row/,
    );
    expect(r.status).toBe(3);
    expect(await deadLetters(db, "ragged.csv")).toEqual([1, 2]);
  });

  it("some rows rejected: the valid ones are kept; exit 1 above 1% unless --allow-skip", async () => {
    const rows = Array.from({ length: 40 }, (_, i) => row(i));
    rows[9] = rows[9]!.replace(",30,1,0", ",-5,1,0"); // time_spent_sec < 0: line 11
    const file = join(dir, "some.csv");
    writeFileSync(file, `${HEADER}\n${rows.join("\n")}\n`);
    const db = join(dir, "some.duckdb");
    const r = mastery("ingest", file, "--demo", "--db", db);
    expect(r.stdout).toContain(`${file}: read 40 rows, used 39, skipped 1 (2.5%)`);
    expect(r.stdout).toMatch(/1 +time_spent_sec: .*: line 11\n/);
    expect(r.stderr).toMatch(/2\.50% of the rows were rejected .*--allow-skip/);
    expect(r.status).toBe(1);
    expect(await deadLetters(db, "some.csv")).toEqual([10]);
    const again = mastery("ingest", file, "--demo", "--db", join(dir, "some2.duckdb"), "--allow-skip");
    expect(again.status).toBe(0);
  });

  it("a foreign export without --mapping: exit 3 and the hint to pass the built-in mapping", () => {
    const file = join(dir, "as.csv");
    const header =
      "order_id,assignment_id,user_id,assistment_id,problem_id,original,correct,attempt_count,ms_first_response,tutor_mode,answer_type,sequence_id,student_class_id,position,type,base_sequence_id,skill_id,skill_name,teacher_id,school_id,hint_count,hint_total,overlap_time,template_id,answer_id,answer_text,first_action,bottom_hint,opportunity,opportunity_original";
    const line = (i: number) =>
      `${33022537 + i},33139,64525,33139,51424,1,1,1,32454,tutor,algebra,5948,13241,126,MasterySection,5948,1,Box and Whisker,22763,73,0,3,32454,30799,,26,0,,1,1`;
    writeFileSync(file, `${header}\n${[1, 2, 3].map(line).join("\n")}\n`);
    const r = mastery("ingest", file, "--demo", "--db", join(dir, "as.duckdb"));
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(
      /every row was rejected \(3 rows\); most common reason: type: event\.type must be one of/,
    );
    expect(r.stderr).toContain(`hint: ${file} has the columns of a known export: pass --mapping assistments`);
    const mapped = mastery(
      "ingest",
      file,
      "--demo",
      "--db",
      join(dir, "as.duckdb"),
      "--mapping",
      "assistments",
    );
    expect(mapped.stdout).toMatch(/accepted +3 +duplicate +0 +rejected +0/);
    expect(mapped.status).toBe(0);
  });

  it("an empty file and a binary file each get one printable line", () => {
    const empty = join(dir, "empty.csv");
    writeFileSync(empty, "");
    const e = mastery("ingest", empty, "--demo", "--db", join(dir, "e.duckdb"));
    expect(e.status).toBe(1);
    expect(e.stderr).toBe(`error: ${empty}: the file is empty (no header, no rows)\n`);
    const binary = join(dir, "quiz_attempts.csv");
    writeFileSync(
      binary,
      Uint8Array.from({ length: 2048 }, (_, i) => (i * 37) % 256),
    );
    const b = mastery("ingest", binary, "--demo", "--db", join(dir, "b.duckdb"));
    expect(b.status).toBe(1);
    expect(b.stderr.trim().split("\n")).toHaveLength(1);
    expect(b.stderr).toMatch(/not a text file \(binary content/);
    expect(b.stderr).toMatch(/^[\x20-\x7e\n]*$/);
  });
});

describe("train / evaluate / calibration-report on files", () => {
  it("use the generator's own quiz_attempts.csv (true/false labels, ISO times), and the --help example works", () => {
    expect(
      mastery(
        "generate",
        "--students",
        "60",
        "--topics",
        "12",
        "--days",
        "14",
        "--seed",
        "5",
        "--out",
        "data",
      ).status,
    ).toBe(0);
    const cols = "user=student_id,skill=topic_id,correct=is_correct,order=timestamp";
    const train = mastery(
      "train",
      "bkt",
      "--data",
      "data/quiz_attempts.csv",
      "--columns",
      cols,
      "--restarts",
      "2",
      "--out",
      "out/bkt",
    );
    expect(train.stderr).toMatch(/^data\/quiz_attempts\.csv: read (\d[\d,]*) rows, used \1, skipped 0\n$/);
    expect(train.status).toBe(0);
    // The calibration-report --help example, verbatim but for the group size.
    const report = mastery(
      "calibration-report",
      "--model",
      "out/bkt",
      "--data",
      "data/quiz_attempts.csv",
      "--columns",
      cols,
      "--group",
      "skill,school_id,grade",
      "--min-group-size",
      "5",
    );
    expect(report.status).toBe(0);
    expect(report.stdout).toMatch(/^overall: n=\d+ /);
    expect(report.stdout).toContain("by school_id");
  });

  it("a wrong correct= column stops evaluate with the reason and lines, not AUC 1 on a few rows", () => {
    const cols = "user=student_id,skill=topic_id,correct=hints_used";
    const r = mastery(
      "evaluate",
      "--model",
      "out/bkt",
      "--data",
      "data/quiz_attempts.csv",
      "--columns",
      cols,
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /column "hints_used" \(correct\) is not a label \(0\/1, true\/false, yes\/no or correct\/incorrect\): line \d+ "\d+"/,
    );
    expect(r.stderr).toMatch(
      /of the rows of data\/quiz_attempts\.csv are unusable \(more than 1%\).*--allow-skip/,
    );
  });

  it("evaluate warns when the log's skills were never seen in training", () => {
    const cols = "user=student_id,skill=question_id,correct=is_correct";
    const r = mastery(
      "evaluate",
      "--model",
      "out/bkt",
      "--data",
      "data/quiz_attempts.csv",
      "--columns",
      cols,
    );
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/warning: 100% of the rows \(\d+ of \d+ skills, e\.g\. "t\d+-q\d+"/);
    expect(Object.keys(JSON.parse(r.stdout))).toEqual(["auc", "rmse", "logloss", "ece", "n"]);
  });
});

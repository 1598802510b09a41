import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TooManySkippedError } from "../../features/fileRows.ts";
import { generateSynthetic } from "../../features/synthetic/generate.ts";
import { coverageWarnings } from "../../training/coverage.ts";
import { fitElo } from "../../training/elo.ts";
import { loadResponses, ResponseDataError } from "../../training/responses.ts";

const dir = mkdtempSync(join(tmpdir(), "mastery-responses-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(text: string | Uint8Array): string {
  const path = join(dir, `f${n++}.csv`);
  writeFileSync(path, text);
  return path;
}
const COLS = { user: "u", skill: "s", correct: "c" };

describe("loadResponses: rows read, used and skipped", () => {
  it("a wrong label column stops with the reason and the first line numbers instead of keeping a few rows", () => {
    // The mistake from issue 14: correct= names a continuous column; only exact 0/1 values would survive.
    const rows = ["u,s,c,score"];
    for (let i = 0; i < 200; i++)
      rows.push(`u${i % 7},s${i % 3},${i % 2},${i === 5 ? 1 : ((i % 9) / 10 + 0.05).toFixed(2)}`);
    const path = file(`${rows.join("\n")}\n`);
    const read = () => loadResponses(path, { ...COLS, correct: "score" });
    expect(read).toThrow(TooManySkippedError);
    expect(read).toThrow(
      /read 200 rows, used 1, skipped 199 \(99\.5%\)\n +199 +column "score" \(correct\) is not a label \(0\/1, true\/false, yes\/no or correct\/incorrect\): line 2 "0\.05", line 3 "0\.15", line 4 "0\.25", \.\.\./,
    );
    // The right column reads every row.
    const ok = loadResponses(path, COLS);
    expect(ok.rows).toMatchObject({ read: 200, used: 200, skipped: 0, reasons: [] });
    expect(ok.n).toBe(200);
  });

  it("skips short rows and empty skills by reason; under the threshold, or with allowSkip, keeps the rest", () => {
    const rows = ["u,s,c"];
    for (let i = 0; i < 300; i++) rows.push(`u${i % 5},s${i % 4},${i % 2}`);
    rows.push("u1,s1"); // line 302: ragged
    rows.push("u2,,1"); // line 303: no skill
    const path = file(rows.join("\n"));
    const log = loadResponses(path, COLS, undefined, { maxSkipFraction: 0.01 });
    expect(log.n).toBe(300);
    expect(log.rows.read).toBe(302);
    expect(log.rows.reasons.map((r) => [r.count, r.examples[0]!.line])).toEqual([
      [1, 302],
      [1, 303],
    ]);
    const few = file("u,s,c\na,x,1\nb,x,0\nc,x\n");
    expect(() => loadResponses(few, COLS)).toThrow(/33.3% of the rows .* --allow-skip/s);
    const heard: number[] = [];
    const kept = loadResponses(few, COLS, undefined, {
      allowSkip: true,
      onRows: (c) => heard.push(c.skipped),
    });
    expect([kept.n, heard]).toEqual([2, [1]]);
  });

  it("accepts true/false, yes/no and correct/incorrect labels and ISO or epoch times as the order", () => {
    const path = file(
      [
        "u,s,c,t",
        "a,x,incorrect,2026-09-02T10:00:00Z",
        "a,x,TRUE,2026-09-01T10:00:00+02:00",
        "a,x,no,1788300000", // epoch seconds: 2026-09-02T... later than both above
        "a,x,yes,1788200000000", // epoch ms: 2026-08-31, the earliest
      ].join("\n"),
    );
    const log = loadResponses(path, { ...COLS, order: "t" });
    expect(Array.from(log.correct)).toEqual([1, 1, 0, 0]);
    expect(log.rows.skipped).toBe(0);
  });

  it("names an empty file and a binary file in one line each", () => {
    const empty = file("");
    expect(() => loadResponses(empty, COLS)).toThrow(
      new ResponseDataError(`${empty} is empty: expected a CSV/TSV response log with a header line`),
    );
    const zip = Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x08, 0x00, 0x08, 0x00, 0xff, 0xfe]);
    expect(() => loadResponses(file(zip), COLS)).toThrow(/is not a text file \(binary content\)/);
  });

  it("reads the generator's own quiz_attempts.csv with no row skipped", async () => {
    const out = join(dir, "synthetic");
    await generateSynthetic({
      students: 40,
      topics: 12,
      days: 10,
      seed: 3,
      start: "2026-09-01",
      eventsPerDay: 3,
      truthEvery: 0,
      workers: 0,
      outDir: out,
    });
    const path = join(out, "quiz_attempts.csv");
    const lines = readFileSync(path, "utf8").trim().split("\n").length - 1;
    const log = loadResponses(path, {
      user: "student_id",
      skill: "topic_id",
      correct: "is_correct",
      item: "question_id",
      order: "timestamp",
    });
    expect(lines).toBeGreaterThan(100);
    expect(log.rows).toMatchObject({ read: lines, used: lines, skipped: 0 });
    expect(log.userNames.length).toBe(40);
  });
});

describe("coverageWarnings", () => {
  const log = (rows: string[], item: boolean) =>
    loadResponses(file(["u,s,i,c", ...rows].join("\n")), item ? { ...COLS, item: "i" } : COLS);
  const trainRows: string[] = [];
  for (let k = 0; k < 120; k++) trainRows.push(`u${k % 6},s${k % 3},q${k % 9},${(k * 7) % 3 === 0 ? 0 : 1}`);
  const model = fitElo(log(trainRows, true), { maxEvaluations: 5 }).model.toJSON();

  it("is silent on data like the training data", () => {
    expect(coverageWarnings(model, log(trainRows, true), { ...COLS, item: "i" })).toEqual([]);
  });

  it("warns when most rows' skills and items were never seen, and when the item column is missing", () => {
    const unseen = trainRows.map((r) => r.replace(/,s(\d),q(\d),/, ",other$1,new$2,"));
    const w = coverageWarnings(model, log(unseen, true), { ...COLS, item: "i" });
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(
      /^100% of the rows \(3 of 3 skills, e\.g\. "other0", "other1", "other2"\) have skills the model never saw/,
    );
    expect(w[1]).toMatch(/^100% of the rows \(9 of 9 items, .*\) have items the model never saw/);
    const noItem = coverageWarnings(model, log(trainRows, false), COLS);
    expect(noItem).toEqual([
      expect.stringMatching(/trained with an item column \(9 items\) but --columns has no item=COL/),
    ]);
  });
});

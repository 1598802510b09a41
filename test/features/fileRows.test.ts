import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatRowCounts,
  nonTextReason,
  parseLabel,
  parseTimeMs,
  RowReport,
  TooManySkippedError,
} from "../../features/fileRows.ts";

describe("parseLabel", () => {
  it("accepts the common encodings of a binary label, in any case, and nothing else", () => {
    for (const t of ["1", "1.0", "true", "TRUE", "True", "t", "yes", "Y", "correct", " Correct "])
      expect(parseLabel(t), t).toBe(1);
    for (const f of ["0", "0.0", "false", "F", "no", "N", "incorrect", "INCORRECT", "wrong"])
      expect(parseLabel(f), f).toBe(0);
    for (const bad of ["", "0.5", "2", "-1", "maybe", "nan", "truee"])
      expect(parseLabel(bad), bad).toBeUndefined();
  });
});

describe("parseTimeMs", () => {
  it("reads ISO 8601 with Z, with an offset, without a zone (UTC) and a date alone", () => {
    expect(parseTimeMs("2026-09-02T18:47:11Z")).toBe(Date.UTC(2026, 8, 2, 18, 47, 11));
    expect(parseTimeMs("2026-09-02T18:47:11+02:00")).toBe(Date.UTC(2026, 8, 2, 16, 47, 11));
    expect(parseTimeMs("2026-09-02T18:47:11")).toBe(Date.UTC(2026, 8, 2, 18, 47, 11));
    expect(parseTimeMs("2026-09-02 18:47:11.250Z")).toBe(Date.UTC(2026, 8, 2, 18, 47, 11, 250));
    expect(parseTimeMs("2026-09-02")).toBe(Date.UTC(2026, 8, 2));
  });

  it("tells epoch seconds from epoch milliseconds by magnitude", () => {
    expect(parseTimeMs("1788374831")).toBe(1_788_374_831_000);
    expect(parseTimeMs("1788374831000")).toBe(1_788_374_831_000);
    expect(parseTimeMs("1788374831.5")).toBe(1_788_374_831_500);
  });

  it("round-trips any instant through its ISO, seconds and milliseconds forms", () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2100, 0, 1) }), (ms) => {
        const whole = ms - (ms % 1000);
        expect(parseTimeMs(new Date(ms).toISOString())).toBe(ms);
        expect(parseTimeMs(String(ms))).toBe(ms);
        expect(parseTimeMs(String(whole / 1000))).toBe(whole);
      }),
    );
  });

  it("rejects what is not a time", () => {
    for (const bad of ["", "yesterday", "2026-13-45", "02/09/2026", "12:00", "NaN"])
      expect(parseTimeMs(bad), bad).toBeUndefined();
  });
});

describe("RowReport", () => {
  it("counts rows by reason, keeps the first three examples with line numbers, and formats them", () => {
    const r = new RowReport("log.csv");
    for (let line = 2; line <= 101; line++) {
      if (line % 10 === 0) r.skip(line, 'column "correct" is not a label', `"${line}"`);
      else if (line === 7) r.skip(line, "row has fewer fields than the header needs", "2 of 5");
      else r.use();
    }
    const c = r.counts();
    expect(c).toMatchObject({ read: 100, used: 89, skipped: 11 });
    expect(c.reasons.map((x) => [x.reason, x.count])).toEqual([
      ['column "correct" is not a label', 10],
      ["row has fewer fields than the header needs", 1],
    ]);
    expect(c.reasons[0]!.examples).toEqual([
      { line: 10, detail: '"10"' },
      { line: 20, detail: '"20"' },
      { line: 30, detail: '"30"' },
    ]);
    expect(formatRowCounts(c)).toBe(
      [
        "log.csv: read 100 rows, used 89, skipped 11 (11%)",
        '  10  column "correct" is not a label: line 10 "10", line 20 "20", line 30 "30", ...',
        "   1  row has fewer fields than the header needs: line 7 2 of 5",
      ].join("\n"),
    );
  });

  it("fails above the threshold (default 1%) unless skipping is allowed, and always when nothing is usable", () => {
    const report = (used: number, skipped: number) => {
      const r = new RowReport("f.csv");
      for (let i = 0; i < used; i++) r.use();
      for (let i = 0; i < skipped; i++) r.skip(i + 2, "bad", "x");
      return r;
    };
    expect(() => report(99, 1).enforce()).not.toThrow(); // exactly 1%
    expect(() => report(98, 2).enforce()).toThrow(TooManySkippedError);
    expect(() => report(98, 2).enforce()).toThrow(/2% of the rows of f\.csv are unusable.*--allow-skip/s);
    expect(() => report(98, 2).enforce({ allowSkip: true })).not.toThrow();
    expect(() => report(98, 2).enforce({ maxSkipFraction: 0.05 })).not.toThrow();
    expect(() => report(0, 5).enforce({ allowSkip: true })).toThrow(/no usable rows in f\.csv/);
    expect(() => report(0, 0).enforce()).not.toThrow();
  });
});

describe("nonTextReason", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  it("tells an empty file, a binary file and text apart", () => {
    expect(nonTextReason(new Uint8Array(0))).toBe("empty");
    expect(nonTextReason(bytes(" \n\r\n\t"))).toBe("empty");
    expect(nonTextReason(bytes("a,b\n1,2\n"))).toBeUndefined();
    expect(nonTextReason(bytes("élève,réponse\nÅsa,1\n"))).toBeUndefined();
    // A zip header (PK\x03\x04 ... NUL bytes) and Parquet's magic followed by binary pages.
    expect(nonTextReason(Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00]))).toBe("binary");
    expect(nonTextReason(Uint8Array.from([0x50, 0x41, 0x52, 0x31, 0x15, 0x04, 0x15, 0x02, 0x01, 0x1c]))).toBe(
      "binary",
    );
  });
});

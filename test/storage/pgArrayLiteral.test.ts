import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pgArrayElement, pgArrayLiteral } from "../../storage/pgArrayLiteral.ts";
import { microsToSqlTimestamp } from "../../storage/rawEventStore.ts";

// node-postgres' own conversion of a parameter (pg/lib/utils.js): what the stores passed before, so the
// literal must be its text exactly (the server then stores the same values).
const driverValue = (
  createRequire(import.meta.url)("pg/lib/utils.js") as { prepareValue(v: unknown): unknown }
).prepareValue;

// Strings that reach every branch: quotes, backslashes, control characters, lone and paired surrogates.
const element = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom('"', "\\", "a", "{", "}", ",", " ", "\n", "\u0000", "\ud800", "é"),
    maxLength: 30,
  }),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);

describe("pgArrayLiteral", () => {
  it("known answers: plain, quoted, escaped, numbers, booleans, NULL, empty", () => {
    expect(pgArrayLiteral([])).toBe("{}");
    expect(pgArrayLiteral(["a", null, 'say "hi"', "c:\\x", 1.5, -0, true])).toBe(
      '{"a",NULL,"say \\"hi\\"","c:\\\\x","1.5","0","true"}',
    );
    // A control character next to a quote takes the replace path (JSON would write \n as two characters).
    expect(pgArrayElement('a"\nb')).toBe('"a\\"\nb"');
    expect(pgArrayElement('{"p":0.5}')).toBe('"{\\"p\\":0.5}"');
  });

  it("is node-postgres' own array text for any strings, numbers, booleans and nulls (fast-check)", () => {
    fc.assert(
      fc.property(fc.array(element, { maxLength: 12 }), (values) => {
        expect(pgArrayLiteral(values)).toBe(driverValue(values));
      }),
      { numRuns: 2000 },
    );
  });

  it("arrays of strings only (the one-pass JSON path, or its fallback) are node-postgres' text (fast-check)", () => {
    const text = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string({ unit: "binary", maxLength: 40 }),
    );
    fc.assert(
      fc.property(fc.array(text, { maxLength: 20 }), (values) => {
        expect(pgArrayLiteral(values)).toBe(driverValue(values));
      }),
      { numRuns: 2000 },
    );
  });

  it("each element is node-postgres' quoting of that string (fast-check)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (s) => {
        expect(`{${pgArrayElement(s)}}`).toBe(driverValue([s]));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("microsToSqlTimestamp", () => {
  const slow = (us: number) => {
    const ms = Math.floor(us / 1000);
    const iso = new Date(ms).toISOString();
    return `${iso.slice(0, 10)} ${iso.slice(11, 23)}${String(us - ms * 1000).padStart(3, "0")}`;
  };

  it("known answer, and repeated or interleaved instants give each one's own text (fast-check)", () => {
    expect(microsToSqlTimestamp(1_767_607_200_123_456)).toBe("2026-01-05 10:00:00.123456");
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 4_102_444_800_000_000 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (instants, picks) => {
          for (const p of picks) {
            const us = instants[p % instants.length]!;
            expect(microsToSqlTimestamp(us)).toBe(slow(us));
          }
        },
      ),
    );
  });
});

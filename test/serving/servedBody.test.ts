import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { servedBody } from "../../serving/servedBody.ts";

describe("servedBody: a body given in parts", () => {
  it("property: the parts' bytes and ETag are the joined text's, surrogates split across parts included", () => {
    // Units drawn from ASCII, two-byte, three-byte and both surrogate halves, so a part may end in a high
    // surrogate whose low half starts the next part.
    const unit = fc.constantFrom("a", '"', "\u00e9", "\u20ac", "\ud83d", "\ude00", "{", "}");
    const part = fc.array(unit, { maxLength: 12 }).map((u) => u.join(""));
    // A long part (past the length encodeParts joins below) somewhere, or none: both ways of encoding.
    const long = "x".repeat(120_001);
    fc.assert(
      fc.property(fc.array(part, { maxLength: 8 }), fc.nat(9), fc.boolean(), (short, at, withLong) => {
        const parts = withLong ? [...short.slice(0, at), long, ...short.slice(at)] : short;
        const whole = servedBody(parts.join(""), []);
        const split = servedBody(parts, []);
        expect(split.buf.equals(Buffer.from(parts.join(""), "utf8"))).toBe(true);
        expect(split.etag).toBe(whole.etag);
      }),
      { numRuns: 1000 },
    );
  });

  it("known answer: a pair split across two parts is one 4-byte character, in a short and in a long text", () => {
    const b = servedBody(['{"a":"\ud83d', '\ude00"}'], []);
    expect([...b.buf]).toEqual([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xf0, 0x9f, 0x98, 0x80, 0x22, 0x7d]);
    expect(b.buf.length).toBe(12);
    const pad = " ".repeat(130_000);
    const long = servedBody([`${pad}\ud83d`, "\ude00\u00e9"], []);
    expect(long.buf.length).toBe(130_000 + 4 + 2);
    expect([...long.buf.subarray(130_000)]).toEqual([0xf0, 0x9f, 0x98, 0x80, 0xc3, 0xa9]);
  });

  it("known answer: a long text of one-, two- and three-byte characters in parts", () => {
    const parts = ["a".repeat(100_000), "\u00e9".repeat(20_000), "\u20ac".repeat(10_000), "}"];
    const b = servedBody(parts, []);
    expect(b.buf.length).toBe(100_000 + 40_000 + 30_000 + 1);
    expect(b.buf.equals(Buffer.from(parts.join(""), "utf8"))).toBe(true);
  });
});

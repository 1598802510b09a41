import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { servedBody } from "../../serving/servedBody.ts";

describe("servedBody: a body given in parts", () => {
  it("property: the parts' bytes and ETag are the joined text's, surrogates split across parts included", () => {
    // Units drawn from ASCII, two-byte, three-byte and both surrogate halves, so a part may end in a high
    // surrogate whose low half starts the next part.
    const unit = fc.constantFrom("a", '"', "\u00e9", "\u20ac", "\ud83d", "\ude00", "{", "}");
    const part = fc.array(unit, { maxLength: 12 }).map((u) => u.join(""));
    fc.assert(
      fc.property(fc.array(part, { maxLength: 8 }), (parts) => {
        const whole = servedBody(parts.join(""), []);
        const split = servedBody(parts, []);
        expect(split.buf.equals(Buffer.from(parts.join(""), "utf8"))).toBe(true);
        expect(split.etag).toBe(whole.etag);
      }),
      { numRuns: 1000 },
    );
  });

  it("known answer: a pair split across two parts is one 4-byte character", () => {
    const b = servedBody(['{"a":"\ud83d', '\ude00"}'], []);
    expect([...b.buf]).toEqual([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xf0, 0x9f, 0x98, 0x80, 0x22, 0x7d]);
    expect(b.buf.length).toBe(12);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { servedBody } from "../../serving/servedBody.ts";
import { fromSharedBody, sharedFingerprint, toSharedBody } from "../../serving/sharedBodyCache.ts";
import { decodeSharedValue, encodeSharedBody, newToken, TOKEN_LEN } from "../../storage/sharedBodies.ts";

/** The shared body's stored bytes (pure): what a reader decodes is what a writer encoded, or a miss. */
describe("shared body encoding", () => {
  const topicArb = fc.record({
    topicId: fc.string({ minLength: 1, maxLength: 12 }),
    score: fc.double({ min: 0, max: 1, noNaN: true }),
    scoreSource: fc.constantFrom("bkt", "elo", "served", "teacher_override"),
  });

  it("round-trips the body bytes, ETag, birth time and served scores (any JSON, any topic ids)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.array(topicArb, { maxLength: 30 }), fc.nat(), (json, topics, gen) => {
        const b = servedBody(JSON.stringify(json) ?? "null", topics);
        const born = 1_796_000_000_000;
        const token = newToken("B");
        const bytes = encodeSharedBody(token, String(gen), "fp", toSharedBody(b, born));
        expect(bytes.toString("latin1", 0, TOKEN_LEN)).toBe(token);
        const r = decodeSharedValue(bytes, String(gen), "fp");
        if (r.kind !== "hit") throw new Error("expected a hit");
        const back = fromSharedBody(r.body);
        expect(back.buf.equals(b.buf)).toBe(true);
        expect(back.etag).toBe(b.etag);
        expect(back.bornAtMs).toBe(born);
        expect(back.topics).toEqual(b.topics);
      }),
    );
  });

  it("another generation or fingerprint, a tombstone, no value or a cut value is a miss with the value's token", () => {
    const b = servedBody('{"a":1}', []);
    const token = newToken("B");
    const bytes = encodeSharedBody(token, "3", "fp", toSharedBody(b, 1));
    expect(decodeSharedValue(bytes, "4", "fp")).toEqual({ kind: "miss", gen: "4", token });
    expect(decodeSharedValue(bytes, "3", "other")).toEqual({ kind: "miss", gen: "3", token });
    const t = newToken("T");
    expect(decodeSharedValue(Buffer.from(t), "3", "fp")).toEqual({ kind: "miss", gen: "3", token: t });
    expect(decodeSharedValue(null, "0", "fp")).toEqual({ kind: "miss", gen: "0", token: "" });
    // A value cut inside its meta: never a hit.
    const cut = bytes.subarray(0, bytes.indexOf(0x0a) + 1);
    const withMeta = encodeSharedBody(token, "3", "fp", { ...toSharedBody(b, 1), meta: "[1,2,3]" });
    expect(decodeSharedValue(withMeta.subarray(0, withMeta.indexOf(0x0a) + 3), "3", "fp").kind).toBe("miss");
    expect(decodeSharedValue(cut, "3", "fp").kind).toBe("miss"); // its meta ("[]") is cut
  });

  it("tokens are unique and of the fixed length; bad fields are refused with what to fix", () => {
    const seen = new Set(Array.from({ length: 1000 }, () => newToken("T")));
    expect(seen.size).toBe(1000);
    for (const t of seen) expect(t).toMatch(/^T[0-9a-f]{16}$/);
    const b = toSharedBody(servedBody("{}", []), 1);
    expect(() => encodeSharedBody("Bxx", "0", "fp", b)).toThrow(/token must be/);
    expect(() => encodeSharedBody(newToken("B"), "0", "f p", b)).toThrow(
      /fingerprint must be non-empty without spaces/,
    );
  });

  it("the fingerprint changes with the serving config", () => {
    expect(sharedFingerprint({ masteredAt: 0.7 })).toBe(sharedFingerprint({ masteredAt: 0.7 }));
    expect(sharedFingerprint({ masteredAt: 0.7 })).not.toBe(sharedFingerprint({ masteredAt: 0.8 }));
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEMO_PSEUDONYM_KEY,
  Pseudonymizer,
  PseudonymKeyError,
  pseudonymizerFromEnv,
} from "../../features/pseudonymize.ts";

describe("Pseudonymizer", () => {
  it("is RFC 4231 HMAC-SHA256 test case 1 (key 0x0b x 20, data 'Hi There') truncated to 128 bits", () => {
    // Full MAC: b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7
    const p = new Pseudonymizer("\u000b".repeat(20));
    expect(p.studentKey("Hi There")).toBe("b0344c61d8db38535ca8afceaf0bf12b");
  });

  it("is RFC 4231 test case 2 (key 'Jefe') truncated to 128 bits", () => {
    // Full MAC: 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843. HMAC zero-pads keys
    // shorter than the block, so 'Jefe' + 12 NUL bytes is the same key and passes MIN_KEY_LENGTH.
    const p = new Pseudonymizer("Jefe".padEnd(16, "\u0000"));
    expect(p.studentKey("what do ya want for nothing?")).toBe("5bdcc146bf60754e6a042426089575c7");
  });

  it("is stable per key and differs across keys (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.string({ minLength: 16 }),
        fc.string({ minLength: 16 }),
        (id, k1, k2) => {
          fc.pre(k1 !== k2);
          const a = new Pseudonymizer(k1);
          expect(a.studentKey(id)).toBe(new Pseudonymizer(k1).studentKey(id));
          expect(a.studentKey(id)).toMatch(/^[0-9a-f]{32}$/);
          expect(a.studentKey(id)).not.toBe(new Pseudonymizer(k2).studentKey(id));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("refuses keys shorter than 16 characters", () => {
    expect(() => new Pseudonymizer("short")).toThrow(PseudonymKeyError);
  });
});

describe("pseudonymizerFromEnv", () => {
  it("refuses to start without MASTERY_PSEUDONYM_KEY and says how to set it", () => {
    expect(() => pseudonymizerFromEnv({ env: {} })).toThrow(
      /MASTERY_PSEUDONYM_KEY is not set.*openssl rand -hex 32/,
    );
    try {
      pseudonymizerFromEnv({ env: {} });
    } catch (err) {
      expect((err as PseudonymKeyError).code).toBe("PSEUDONYM_KEY");
    }
  });

  it("uses the configured key", () => {
    const p = pseudonymizerFromEnv({ env: { MASTERY_PSEUDONYM_KEY: "k".repeat(32) } });
    expect(p.studentKey("s1")).toBe(new Pseudonymizer("k".repeat(32)).studentKey("s1"));
  });

  it("falls back to the documented demo key in demo mode, with a warning", () => {
    const warnings: string[] = [];
    const p = pseudonymizerFromEnv({ env: {}, demo: true, warn: (m) => warnings.push(m) });
    expect(p.studentKey("s1")).toBe(new Pseudonymizer(DEMO_PSEUDONYM_KEY).studentKey("s1"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/demo key/);
  });

  it("MASTERY_DEMO=1 or NODE_ENV=test alone never switch to the public demo key", () => {
    expect(() => pseudonymizerFromEnv({ env: { MASTERY_DEMO: "1" } })).toThrow(
      /MASTERY_PSEUDONYM_KEY is not set/,
    );
    expect(() => pseudonymizerFromEnv({ env: { NODE_ENV: "test" } })).toThrow(
      /MASTERY_PSEUDONYM_KEY is not set/,
    );
  });
});

import { describe, expect, it } from "vitest";
import { latentCacheTag, latentEnv } from "../../bench/latentEnv.ts";

describe("bench/latentEnv.ts: LATENT_TOPIC_FIT (round 27)", () => {
  it("joint names the fit option, the CLI flag and its own real-log cache tag; unset adds nothing", () => {
    const joint = latentEnv({ LATENT_TOPIC_FIT: "joint" });
    expect(joint.fit).toEqual({ topicFit: "joint" });
    expect(joint.flags).toEqual(["--latent-topic-fit joint"]);
    expect(latentCacheTag(joint.fit)).toBe("-tfj");
    const none = latentEnv({});
    expect(none.fit).toEqual({});
    expect(none.flags).toEqual([]);
    expect(latentCacheTag(none.fit)).toBe("");
    // The default spelled out keeps the default's cache (the same fits).
    expect(latentCacheTag(latentEnv({ LATENT_TOPIC_FIT: "alternating" }).fit)).toBe("");
  });

  it("refuses another value, naming the variable and the allowed ones", () => {
    expect(() => latentEnv({ LATENT_TOPIC_FIT: "newton" })).toThrow(
      /LATENT_TOPIC_FIT must be one of alternating, joint \(got newton\)/,
    );
  });
});

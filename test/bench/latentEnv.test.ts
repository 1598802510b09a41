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

describe("bench/latentEnv.ts: LATENT_AS_OF_HALF_LIFE (round 28)", () => {
  it("idle-gaps names the fit option, the CLI flag and its own real-log cache tag; filter keeps the default's", () => {
    const idle = latentEnv({ LATENT_AS_OF_HALF_LIFE: "idle-gaps" });
    expect(idle.fit).toEqual({ asOfHalfLife: "idle-gaps" });
    expect(idle.flags).toEqual(["--latent-as-of-half-life idle-gaps"]);
    expect(latentCacheTag(idle.fit)).toBe("-ahi");
    expect(latentCacheTag(latentEnv({ LATENT_AS_OF_HALF_LIFE: "filter" }).fit)).toBe("");
    expect(() => latentEnv({ LATENT_AS_OF_HALF_LIFE: "long" })).toThrow(
      /LATENT_AS_OF_HALF_LIFE must be one of filter, idle-gaps \(got long\)/,
    );
  });
});

describe("bench/latentEnv.ts: LATENT_CONSOLIDATION (round 29)", () => {
  it("fit names the fit option, the CLI flag and its own real-log cache tag; off keeps the default's", () => {
    const fit = latentEnv({ LATENT_CONSOLIDATION: "fit" });
    expect(fit.fit).toEqual({ consolidation: "fit" });
    expect(fit.flags).toEqual(["--latent-consolidation fit"]);
    expect(latentCacheTag(fit.fit)).toBe("-cons");
    expect(latentCacheTag(latentEnv({ LATENT_CONSOLIDATION: "off" }).fit)).toBe("");
    // A share in (0, 1) is the bench-only diagnostic (no CLI flag), with a cache tag of its own.
    const fixed = latentEnv({ LATENT_CONSOLIDATION: "0.12" });
    expect(fixed.fit).toEqual({ consolidation: 0.12 });
    expect(latentCacheTag(fixed.fit)).toBe("-cons0.12");
    expect(() => latentEnv({ LATENT_CONSOLIDATION: "on" })).toThrow(
      /LATENT_CONSOLIDATION must be one of off, fit \(got on\)/,
    );
  });
});

describe("bench/latentEnv.ts: LATENT_GLOBAL_FIT (round 30)", () => {
  it("converged names the fit option, the CLI flag and its own real-log cache tag; budget keeps the default's", () => {
    const conv = latentEnv({ LATENT_GLOBAL_FIT: "converged" });
    expect(conv.fit).toEqual({ globalFit: "converged" });
    expect(conv.flags).toEqual(["--latent-global-fit converged"]);
    expect(latentCacheTag(conv.fit)).toBe("-gfc");
    expect(latentCacheTag(latentEnv({ LATENT_GLOBAL_FIT: "budget" }).fit)).toBe("");
    expect(() => latentEnv({ LATENT_GLOBAL_FIT: "bfgs" })).toThrow(
      /LATENT_GLOBAL_FIT must be one of budget, converged, converged-noise-held, converged-forgetting-held \(got bfgs\)/,
    );
  });
  it("converged-noise-held (round 31) names its option, flag and a cache tag of its own", () => {
    const held = latentEnv({ LATENT_GLOBAL_FIT: "converged-noise-held" });
    expect(held.fit).toEqual({ globalFit: "converged-noise-held" });
    expect(held.flags).toEqual(["--latent-global-fit converged-noise-held"]);
    expect(latentCacheTag(held.fit)).toBe("-gfn");
    expect(latentCacheTag(latentEnv({ LATENT_GLOBAL_FIT: "converged-forgetting-held" }).fit)).toBe("-gff");
  });
});

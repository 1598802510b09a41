import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { LatentFilter } from "../../models/latentFilter.ts";
import { LATENT_WIDE_KERNELS, type LatentWideKernel } from "../../models/latentWideWasm.ts";
import { type MasteryScale, SERVED_INPUTS, type ServedMasteryJson } from "../../models/servedMastery.ts";
import { latentKernelFromEnv } from "../../serving/servedBatch.ts";
import { type EvidenceCounts, type ServedGroup, ServedGroupScorer } from "../../serving/servedBatchGroup.ts";
import { LATENT_STUDENT_VARIANTS, latentStudentCases } from "../models/latentStudentCases.ts";

/**
 * The daily batch's served lines to the bit (lean29): every "pid, source, score, explanation" line the scoring
 * threads write (serving/servedBatchGroup.ts ServedGroupScorer: the per-student scoring, the served estimate, both
 * explanations' text), over the seeded students of test/models/latentStudentCases.ts, for every filter variant on two
 * served scales. `EXPECTED` holds the SHA-256 of the lines as main 8705392 wrote them (before lean29's changes to
 * the fold, the event columns and the text): a change that moves any number or character of any line fails here.
 */
const EXPECTED: Record<string, string> = {
  "no student effect (linear) / centred-logit":
    "f65200015c479d1a8833505304d53a66067823dcbb81a41ec0acc5f5240e5a37",
  "no student effect (linear) / identity": "c33b2394c14049be83299f51e7f632255d930e23b4808f2813b9322e8d72816c",
  "student effect, level only / centred-logit":
    "006afd38b63f86ef3b71f7dd1f687fe8ecececd4673de3720f861047e1bb386a",
  "student effect, level only / identity": "9e6172d07caeabee3b6c749186753838a42a7fa337a225c811bdbab25b3d4a08",
  "student effect + learning loading / centred-logit":
    "d96a1f5b6e1aa9822bed0889c7999ab22361db789ce6a012d44e330fc82a043a",
  "student effect + learning loading / identity":
    "ed80ea755efae6cbf8c5349924ac9a8a36c3406172a4d226dae8b4c1f7cc09ba",
  "logistic, topic thresholds, loading, forget spread / centred-logit":
    "489f37995e3f83e8acb32d6bc85bd88f3327f16889d31b430274058ecf7556b8",
  "logistic, topic thresholds, loading, forget spread / identity":
    "4c0ab7bcb6b37d4bbc0ad7230c2d649f12790a39ab7d1a7a0c7be2656c097de4",
  "durable share, loading, rein-in / centred-logit":
    "3a7891383cb87927358cb3745c74f2713ae10cc068734b178ff3b24a332f3a3b",
  "durable share, loading, rein-in / identity":
    "ae53822891856a0c09106cd084a7cef4cadc514b477b94ffabf7838059ee3f7c",
  "as-of decay, spread, centre shifts, interval bands / centred-logit":
    "f904fb6efb00d801cfda9d6eb2a1ac75dba90b99b6e46f69b60dcb40b37b3f27",
  "as-of decay, spread, centre shifts, interval bands / identity":
    "3b3b74259f35da3352e5a227d18103cc48894a92bef9bc76a447ab0b684b0b9e",
  "durable share, decay, linear, centre shifts / centred-logit":
    "42c8c1de5cd9715ef0ea47cf02a12112d61498581f4ec6e07b26d2c2854b9b38",
  "durable share, decay, linear, centre shifts / identity":
    "cefae2d138ec4042eb6957acf2d0b734cda0b4768d73c8c8de1cc1c714ae928d",
  "floor between cells, spread, loading, rein-in / centred-logit":
    "b842ecc11ccc42f2d8e048abd7b717313b01c0b755d38ebd3a93b7e3619d8e1a",
  "floor between cells, spread, loading, rein-in / identity":
    "e5eb1c920c08ed4ee39199a7caa62732bdbd3ff0410eaa479ce2d9ac0c9c7937",
  "served defaults' shape / centred-logit":
    "d23ad44661ad1f7d02f705f866e5b50e3c465a3cca112b6bae566335e98cc244",
  "served defaults' shape / identity": "cfafc1e544a635785aa25e0b946e83e6b75eb629a28f12f343722e277f8958f9",
  "still (no time, no noise), student effect / centred-logit":
    "c6c692dce749d245ebc57bed3f752c41d6e906443cabdf064622938fd8d91883",
  "still (no time, no noise), student effect / identity":
    "d6248ca9cfe7660a9c6136bb3bfd19fea8ea08cfdb492aedb03a3dce62412b24",
  "no time, loading, two-sided interval / centred-logit":
    "b212d233f13ad8ef347f7e3b037c2b62dec1b2d0528d7d1048046d13fac72e3a",
  "no time, loading, two-sided interval / identity":
    "fa7e5109fa97f3b54ca9a53a2ed22569003360ced40023f9f5be6e54c04b517c",
};

const STUDENTS = 60;
const PER_GROUP = 16;

/** A served model serving `latent` on `scale`, with topic calibrations for A and B (the others take `global`). */
function servedJson(latent: LatentFilter, scale: MasteryScale): ServedMasteryJson {
  const global = { guess: 0.25, slip: 0.11, halfLifeDays: 3650, base: 0.64 };
  return {
    kind: "served-mastery",
    version: 4,
    inputs: [...SERVED_INPUTS],
    means: SERVED_INPUTS.map(() => 0),
    weights: SERVED_INPUTS.map(() => 0),
    intercept: 0.5,
    residualQuantiles: [
      [-0.1, 0.08],
      [-0.12, 0.1],
      [-0.12, 0.08],
      [-0.11, 0.09],
    ],
    ridge: 0.1,
    trainPairs: 1000,
    scale,
    topics: {
      A: { guess: 0.3, slip: 0.118, halfLifeDays: 3650, base: 0.64 },
      B: { guess: 0.21, slip: 0.09, halfLifeDays: 40, base: 0.55 },
    },
    global,
    latent: latent.toJSON(),
    servedFrom: "latent",
    anchor: { method: "pair-centred", base: 0.674, sd: 0.168, pairs: 100, topics: 5 },
  };
}

/**
 * The cases as the batch's groups: PER_GROUP students a group, each student's pairs in topic order (those with
 * events and those without, interleaved as (student_key, topic_id) order has them), the pids numbered across groups.
 */
function groups(): { groups: ServedGroup[]; topics: string[]; asOfDays: number } {
  const cases = latentStudentCases(STUDENTS, 2029);
  const topics = ["A", "B", "C", "D", "Z"];
  // One as-of for the whole run, as the batch has: the latest case's.
  const asOfDays = Math.max(...cases.map((c) => c.asOfDays));
  const out: ServedGroup[] = [];
  let pid = 0;
  for (let from = 0; from < cases.length; from += PER_GROUP) {
    const pids: number[] = [];
    const sids: number[] = [];
    const tis: number[] = [];
    const evStart: number[] = [];
    const t: number[] = [];
    const kind: number[] = [];
    const n: number[] = [];
    const k: number[] = [];
    cases.slice(from, from + PER_GROUP).forEach((c, s) => {
      const pairs = [
        ...c.sequences.map((q) => ({ topic: q.topic, events: q.events })),
        ...c.priorTopics.map((topic) => ({ topic, events: [] })),
      ].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
      for (const p of pairs) {
        pids.push(pid++);
        sids.push(from + s);
        tis.push(topics.indexOf(p.topic));
        evStart.push(t.length);
        for (const e of p.events) {
          t.push(e.t);
          kind.push(e.kind);
          n.push(e.n);
          k.push(e.k);
        }
      }
    });
    evStart.push(t.length);
    out.push({
      id: out.length,
      pairs: pids.length,
      pid: Float64Array.from(pids),
      sid: Float64Array.from(sids),
      ti: Int32Array.from(tis),
      evStart: Int32Array.from(evStart),
      t: Float64Array.from(t),
      kind: Int8Array.from(kind),
      n: Float64Array.from(n),
      k: Float64Array.from(k),
    });
  }
  return { groups: out, topics, asOfDays };
}

/** SHA-256 of every line one scorer writes for all the groups, and the evidence counts. */
function scoreLines(
  model: ServedMasteryJson,
  latentKernel: LatentWideKernel = "js",
): { digest: string; lines: number; kinds: EvidenceCounts } {
  const { groups: gs, topics, asOfDays } = groups();
  const scorer = new ServedGroupScorer({ model, topics, asOfDays, latentKernel });
  const h = createHash("sha256");
  const kinds: EvidenceCounts = {};
  let lines = 0;
  for (const g of gs) {
    scorer.score(
      g,
      {
        write: (text) => {
          h.update(text);
          lines += text.split("\n").length - 1;
        },
      },
      kinds,
    );
  }
  return { digest: h.digest("hex"), lines, kinds };
}

const SCALES: readonly MasteryScale[] = ["centred-logit", "identity"];

describe("the served step's lines are main 8705392's to the bit (lean29)", () => {
  for (const { name, model } of LATENT_STUDENT_VARIANTS)
    it(`${name}: every line's pid, source, score and explanation text`, () => {
      for (const scale of SCALES)
        for (const kernel of LATENT_WIDE_KERNELS) {
          // wasm34: the WebAssembly kernel's lines are the JavaScript one's, to the bit.
          const r = scoreLines(servedJson(model, scale), kernel);
          expect({ scale, kernel, digest: r.digest }).toEqual({
            scale,
            kernel,
            digest: EXPECTED[`${name} / ${scale}`],
          });
        }
    });

  it("the cases cover every evidence kind, several groups and two lines a pair", () => {
    const { groups: gs } = groups();
    const pairs = gs.reduce((a, g) => a + g.pairs, 0);
    const r = scoreLines(servedJson(LATENT_STUDENT_VARIANTS[4]!.model, "centred-logit"));
    expect(gs.length).toBeGreaterThan(2);
    expect(r.lines).toBe(2 * pairs);
    expect(r.kinds.measured).toBeGreaterThan(50);
    expect(r.kinds.indirect).toBeGreaterThan(0);
    expect(r.kinds.prior).toBeGreaterThan(5);
    const all = Object.values(EXPECTED);
    expect(new Set(all).size).toBe(all.length);
    expect(all.length).toBe(LATENT_STUDENT_VARIANTS.length * SCALES.length);
  });
});

/** Writes the digests (to fill `EXPECTED` from the code before the changes): `SERVED_LINES_OUT=<file> npx vitest run <this file>`. */
const printTo = process.env.SERVED_LINES_OUT;
if (printTo !== undefined && printTo !== "") {
  const out: Record<string, string> = {};
  for (const { name, model } of LATENT_STUDENT_VARIANTS)
    for (const scale of SCALES) out[`${name} / ${scale}`] = scoreLines(servedJson(model, scale)).digest;
  writeFileSync(printTo, `${JSON.stringify(out, null, 2)}\n`);
}

describe("MASTERY_LATENT_KERNEL (wasm34)", () => {
  it("picks the served step's wide kernel: wasm unless set, js when asked, a clear refusal otherwise", () => {
    expect(latentKernelFromEnv(undefined)).toBe("wasm");
    expect(latentKernelFromEnv("")).toBe("wasm");
    expect(latentKernelFromEnv("js")).toBe("js");
    expect(latentKernelFromEnv("wasm")).toBe("wasm");
    expect(() => latentKernelFromEnv("JS")).toThrow(
      /MASTERY_LATENT_KERNEL must be one of js, wasm \(got "JS"\)/,
    );
  });
});

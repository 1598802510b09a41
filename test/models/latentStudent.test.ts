import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type LatentFilter, LatentKernel, shiftedRate } from "../../models/latentFilter.ts";
import { scoreStudentLatent } from "../../models/latentStudent.ts";
import { latentEventArb, latentEvents } from "./latentFixtures.ts";
import { checkPredictScore, checkPredictStudent } from "./latentPathChecks.ts";
import {
  digestNumbers,
  LATENT_STUDENT_OPTIONS,
  LATENT_STUDENT_VARIANTS,
  latentStudentCases,
  latentStudentNumbers,
} from "./latentStudentCases.ts";

// Digests of the same cases computed by the code before fold26's optimisations (main 56ebe82).
const expected = JSON.parse(
  readFileSync(join(import.meta.dirname, "fixtures", "latentStudentDigests.json"), "utf8"),
) as Record<string, Record<string, string>>;

describe("scoreStudentLatent is bit for bit the scoring before the optimisations (fold26)", () => {
  const cases = latentStudentCases(60, 2026);
  for (const { name, model } of LATENT_STUDENT_VARIANTS)
    it(`${name}: every estimate, offset and offset sd has the same bits`, () => {
      for (const [label, opts] of Object.entries(LATENT_STUDENT_OPTIONS)) {
        const xs: number[] = [];
        for (const c of cases)
          xs.push(
            ...latentStudentNumbers(
              // fold27: the digests are of the refolding widening (main 56ebe82's); studentWidening.test.ts
              // checks the basis widening against it (the same bits but lo / hi / offsetSd).
              scoreStudentLatent(model, c.sequences, c.priorTopics, c.asOfDays, {
                ...opts,
                widening: "refold",
              }),
            ),
          );
        expect({ label, digest: digestNumbers(xs) }).toEqual({ label, digest: expected[name]?.[label] });
      }
    });

  it("the cases exercise the widening, the offsets and every variant (the digests differ)", () => {
    const all = Object.values(expected).flatMap((o) => Object.values(o));
    // "raw" and "no widening" agree only without a student effect (nothing to widen).
    expect(new Set(all).size).toBe(all.length - 1);
    const m = LATENT_STUDENT_VARIANTS[2]!.model;
    const r = cases.map((c) =>
      scoreStudentLatent(m, c.sequences, c.priorTopics, c.asOfDays, { widening: "refold" }),
    );
    expect(r.filter((x) => x.offsetSd > 0).length).toBeGreaterThan(30);
    expect(r.filter((x) => x.priors.length > 0).length).toBeGreaterThan(5);
    expect(new Set(r.map((x) => x.offset)).size).toBeGreaterThan(30);
  });
});

describe("the lean paths compute the full folds' numbers (fold26)", () => {
  it("predictScore is predict's score, bit for bit, at any offset, for every variant", () => {
    for (const { model } of LATENT_STUDENT_VARIANTS) checkPredictScore(model, 60);
  });

  it("predictStudent is the full fold of every basis part mixed at the student's offset, bit for bit", () => {
    for (const { model } of LATENT_STUDENT_VARIANTS) checkPredictStudent(model, 25);
  });

  it("a kernel on another's learning maps runs as one built alone, and refuses maps of another shift", () => {
    const model = LATENT_STUDENT_VARIANTS[3]!.model as LatentFilter;
    const params = model.json.params;
    const a = model.kernelFor("A", 0.731);
    const b = model.kernelFor("B", 0.731);
    const alone = new LatentKernel(params, 40, model.threshold("B"), 0.731);
    fc.assert(
      fc.property(fc.array(latentEventArb, { maxLength: 30 }), (raw) => {
        const ev = latentEvents(raw);
        const p1 = new Float64Array(40);
        const p2 = new Float64Array(40);
        expect(Object.is(b.run(ev, 0.45, p1), alone.run(ev, 0.45, p2))).toBe(true);
        expect(Array.from(p1)).toEqual(Array.from(p2));
      }),
      { numRuns: 50 },
    );
    expect(b.learnShift).toBe(a.learnShift);
    expect(() => new LatentKernel(params, 40, 0.5, 0.2, undefined, a)).toThrow(/without `mapsOf`/);
  });
});

/** forget as written before fold26 (the arithmetic the planned forgetting must reproduce bit for bit). */
function referenceForget(k: LatentKernel, p: Float64Array, dtDays: number, base: number): void {
  if (!(dtDays > 0)) return;
  const { halfLifeDays, durableShare } = k.params;
  const decay = 2 ** (-dtDays / halfLifeDays);
  const durable = durableShare !== undefined;
  const floor = durable ? base : k.params.floor;
  const d = durable ? durableShare + (1 - durableShare) * decay : decay;
  if (d >= 1) return;
  const G = k.bins;
  const t = new Float64Array(G);
  const s = k.params.forgetSpread ?? 0;
  const fPos = floor * G - 0.5;
  const fj = fPos <= 0 ? 0 : Math.min(G - 2, Math.floor(fPos));
  const fw = fPos <= 0 ? 0 : Math.min(1, fPos - fj);
  for (let i = 0; i < G; i++) {
    const m = p[i]!;
    if (m === 0) continue;
    const x = k.x[i]!;
    if (x <= floor) {
      t[i]! += m;
      continue;
    }
    const g = s > 0 ? m * (1 - s) : m;
    const pos = (floor + (x - floor) * d) * G - 0.5;
    if (pos <= 0) t[0]! += g;
    else {
      const j = Math.floor(pos);
      const w = pos - j;
      t[j]! += g * (1 - w);
      if (w > 0) t[j + 1]! += g * w;
    }
    if (s > 0) {
      t[i]! += m * (s * d);
      const l = m * (s * (1 - d));
      t[fj]! += l * (1 - fw);
      if (fw > 0) t[fj + 1]! += l * fw;
    }
  }
  p.set(t);
}

/** learnFrom as written before fold26: the learning map through a buffer, then the noise through another. */
function referenceLearnFrom(k: LatentKernel, p: Float64Array, kind: number): void {
  const G = k.bins;
  const r = shiftedRate(k.params.learn[kind] ?? 0, k.learnShift);
  if ((k.params.learn[kind] ?? 0) > 0) {
    const t = new Float64Array(G);
    for (let i = 0; i < G; i++) {
      const pos = (k.x[i]! + r * (1 - k.x[i]!)) * G - 0.5;
      const j = pos <= 0 ? 0 : pos >= G - 1 ? G - 2 : Math.floor(pos);
      const u = pos <= 0 ? 0 : pos >= G - 1 ? 1 : pos - j;
      t[j]! += p[i]! * (1 - u);
      t[j + 1]! += p[i]! * u;
    }
    p.set(t);
  }
  const q = k.params.noise;
  if (q > 0) {
    const t = new Float64Array(G);
    let prev = p[0]!;
    for (let i = 0; i < G; i++) {
      const cur = p[i]!;
      const next = i + 1 < G ? p[i + 1]! : cur;
      t[i] = cur * (1 - 2 * q) + q * (i > 0 ? prev : cur) + q * next;
      prev = cur;
    }
    p.set(t);
  }
}

describe("the kernel's planned forgetting and register sums are the straightforward arithmetic (fold26)", () => {
  const massArb = fc.array(fc.oneof(fc.constant(0), fc.double({ min: 1e-9, max: 1, noNaN: true })), {
    minLength: 40,
    maxLength: 40,
  });
  const kernels = LATENT_STUDENT_VARIANTS.flatMap(({ model }) => [
    model.kernelFor("A"),
    model.kernelFor("B", 0.613),
    model.kernelFor("Z", -1.37),
  ]);

  it("forget (planned once per gap, then reused) equals forget written out, for every variant's kernel", () => {
    fc.assert(
      fc.property(
        massArb,
        fc.oneof(fc.double({ min: 0, max: 400, noNaN: true }), fc.constantFrom(0, 0.5, 3, 1e-9, 1e6)),
        fc.double({ min: 0.05, max: 0.9, noNaN: true }),
        (mass, dt, base) => {
          for (const k of kernels)
            for (let rep = 0; rep < 2; rep++) {
              const got = Float64Array.from(mass);
              const want = Float64Array.from(mass);
              k.forget(got, dt, base);
              referenceForget(k, want, dt, base);
              expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
            }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("learnFrom equals the map and the noise written out, and round32 equals a copy through a Float32Array", () => {
    fc.assert(
      fc.property(massArb, fc.integer({ min: 0, max: 4 }), (mass, kind) => {
        for (const k of kernels) {
          const want = Float64Array.from(mass);
          referenceLearnFrom(k, want, kind);
          const got = Float64Array.from(mass);
          k.learnFrom(got, kind);
          expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
          const rounded = Float64Array.from(mass);
          k.learnFrom(rounded, kind, true);
          const viaF32 = Float64Array.from(Float32Array.from(want));
          expect(Buffer.from(rounded.buffer).equals(Buffer.from(viaF32.buffer))).toBe(true);
        }
      }),
      { numRuns: 150 },
    );
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SortScratch, sketchCuts, sketchLimit, sortChunk } from "../../models/gbtSketch.ts";

/** Numerical Recipes LCG, so the columns below are the ones the golden cuts were computed from. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
}

/** XGBoost's last cut, above the maximum m: m + (|m| + 1e-5) in float32 arithmetic. */
function above(m: number): number {
  return Math.fround(m + Math.fround(Math.abs(m) + Math.fround(1e-5)));
}

/** Float32 columns (XGBoost stores features as float32, so it saw exactly these values). */
function goldenColumns(): { name: string; x: Float64Array; w: Float64Array | null; maxBins: number }[] {
  const r = lcg(7);
  const a = Float64Array.from({ length: 50000 }, () => Math.fround(r() * 10 - 5));
  // Runs of three equal values: XGBoost's input queue merges them into one entry.
  const c = new Float64Array(30000);
  for (let i = 0; i < c.length; i += 3) {
    const v = Math.floor(r() * 40);
    c[i] = v;
    c[i + 1] = v;
    c[i + 2] = v;
  }
  const d = Float64Array.from({ length: 20000 }, () => Math.fround(r() ** 2));
  const dw = Float64Array.from({ length: 20000 }, () => Math.fround(0.5 + 1.5 * r()));
  // Runs of 1..6 equal values: runs straddle the buffer boundaries, where a full buffer still merges a value
  // equal to its last entry (XGBoost 1.7's Push) instead of flushing.
  const runs = (n: number): Float64Array => {
    const x = new Float64Array(n);
    for (let i = 0; i < n; ) {
      const v = Math.fround(r() * 100);
      const len = 1 + Math.floor(r() * 6);
      for (let j = 0; j < len && i < n; j++) x[i++] = v;
    }
    return x;
  };
  const e = runs(10488);
  const f = runs(12000);
  const fw = Float64Array.from({ length: 12000 }, () => Math.fround(0.5 + r()));
  return [
    { name: "runs8", x: e, w: null, maxBins: 8 },
    { name: "runsWeighted8", x: f, w: fw, maxBins: 8 },
    { name: "uniform16", x: a, w: null, maxBins: 16 },
    { name: "uniform64", x: a, w: null, maxBins: 64 },
    { name: "ties16", x: c, w: null, maxBins: 16 },
    { name: "weighted16", x: d, w: dw, maxBins: 16 },
  ];
}

/**
 * XGBoost 1.7.4's cuts of these columns (tree_method hist, max_bin = maxBins, sample weights for weighted16),
 * read off as the distinct split conditions of one regression tree on y = x (max_depth 30, eta 1, lambda 0,
 * min_child_weight 0), which splits at every cut. The last cut (above the maximum) is never a split.
 */
const XGBOOST_CUTS: Record<string, number[]> = {
  runs8: [
    13.891860961914062, 26.739530563354492, 38.908172607421875, 51.521732330322266, 62.915199279785156,
    74.40813446044922, 87.10431671142578,
  ],
  runsWeighted8: [
    12.491536140441895, 25.36654281616211, 37.44580078125, 48.473812103271484, 60.961490631103516,
    74.44561004638672, 87.14940643310547,
  ],
  uniform16: [
    -4.381885528564453, -3.734546422958374, -3.119274139404297, -2.486943244934082, -1.8623933792114258,
    -1.232054591178894, -0.575903058052063, -0.05004330351948738, 0.5933328866958618, 1.207884669303894,
    1.8421003818511963, 2.470607042312622, 3.1030077934265137, 3.7261626720428467, 4.375946044921875,
  ],
  uniform64: [
    -4.841357707977295, -4.689589023590088, -4.528988838195801, -4.373335361480713, -4.213746547698975,
    -4.054749965667725, -3.896763324737549, -3.746382236480713, -3.592860460281372, -3.44045352935791,
    -3.2830984592437744, -3.136227607727051, -2.9744606018066406, -2.813746452331543, -2.6584057807922363,
    -2.510622501373291, -2.3530972003936768, -2.2012505531311035, -2.0390725135803223, -1.8797873258590698,
    -1.7217334508895874, -1.5712838172912598, -1.4073281288146973, -1.2609397172927856, -1.091052770614624,
    -0.921638011932373, -0.7658952474594116, -0.6010569930076599, -0.4479365646839142, -0.29809993505477905,
    -0.17003270983695984, -0.0139107471331954, 0.1444511115550995, 0.32389000058174133, 0.45572367310523987,
    0.6180959939956665, 0.7684244513511658, 0.9204097986221313, 1.073225736618042, 1.2322508096694946,
    1.3852819204330444, 1.5462453365325928, 1.6960196495056152, 1.8605666160583496, 2.025402545928955,
    2.1787571907043457, 2.3300282955169678, 2.4850194454193115, 2.6380717754364014, 2.7892227172851562,
    2.9546072483062744, 3.1116254329681396, 3.26877760887146, 3.4198780059814453, 3.582726001739502,
    3.7402923107147217, 3.8983519077301025, 4.058470249176025, 4.2211713790893555, 4.377039909362793,
    4.537647247314453, 4.691646575927734, 4.840582847595215,
  ],
  ties16: [3.0, 5.0, 7.0, 10.0, 12.0, 15.0, 17.0, 19.0, 22.0, 24.0, 26.0, 29.0, 31.0, 34.0, 36.0],
  weighted16: [
    0.00455201743170619, 0.016810977831482887, 0.03742685914039612, 0.06482549011707306, 0.09806958585977554,
    0.14210546016693115, 0.19303464889526367, 0.2525366246700287, 0.3101164996623993, 0.38253501057624817,
    0.4660646915435791, 0.5571737885475159, 0.6552513837814331, 0.7675626277923584, 0.8838850855827332,
  ],
};

describe("sketchCuts (XGBoost hist cut points)", () => {
  it("reproduces XGBoost 1.7.4's cuts exactly, multi-level sketch, ties and weights included (golden)", () => {
    for (const col of goldenColumns()) {
      const cuts = Array.from(sketchCuts(col.x, col.w, col.maxBins));
      const max = col.x.reduce((m, v) => Math.max(m, v), Number.NEGATIVE_INFINITY);
      expect(cuts.slice(0, -1), col.name).toEqual(XGBOOST_CUTS[col.name]);
      expect(cuts.at(-1), col.name).toBe(above(max));
    }
  });

  it("is multi-level on the golden columns (the merge-and-prune path is exercised)", () => {
    // 50,000 values at eps = 1 / (16 * 8): 897 entries per level, so the input is ~28 buffers of 1,794.
    expect(sketchLimit(50000, 1 / 128)).toBe(897);
  });

  it("cuts 1..20 into 4 bins at ranks 5, 10, 14 (hand-computed, also XGBoost's)", () => {
    // Exact summary: value i has rmin i-1, rmax i. Pruned to 5 entries at rank targets 1 + k * 18 / 4
    // (5.5, 10, 14.5): entries 6, 11, 15, plus min and max; cuts are entries 1..3 and 20 + 20 + 1e-5.
    const x = Float64Array.from({ length: 20 }, (_, i) => i + 1);
    expect(Array.from(sketchCuts(x, null, 4))).toEqual([6, 11, 15, above(20)]);
  });

  it("gives every distinct value its own bin when there are at most maxBins of them", () => {
    const x = Float64Array.from([4, 1, 2, 4, 1, 4]);
    expect(Array.from(sketchCuts(x, null, 10))).toEqual([2, 4, above(4)]);
    expect(Array.from(sketchCuts(Float64Array.of(-3), null, 256))).toEqual([above(-3)]);
    expect(sketchCuts(new Float64Array(0), null, 256).length).toBe(1);
  });

  it("skips zero-weight rows and keeps float64 values that are not float32", () => {
    const x = Float64Array.from([0.1, 0.2, 0.3, 0.4]);
    const w = Float64Array.from([1, 0, 1, 1]);
    const cuts = sketchCuts(x, w, 16);
    expect(Array.from(cuts.subarray(0, 2))).toEqual([0.3, 0.4]);
    expect(cuts[2]).toBe(0.4 + (0.4 + 1e-5));
  });
});

describe("sortChunk", () => {
  it("sorts like Float64Array.prototype.sort and moves weights stably (float32 and float64 keys)", () => {
    const sc = new SortScratch();
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.double({ noNaN: true }),
            fc.float({ noNaN: true }).map((v) => v),
            fc.constantFrom(0, -0, 5e-324, -5e-324, Number.MAX_VALUE, Number.POSITIVE_INFINITY),
            fc.integer({ min: -3, max: 3 }),
          ),
          { maxLength: 300 },
        ),
        fc.boolean(),
        (values, float32Only) => {
          const vals = Float64Array.from(values, (v) => (float32Only ? Math.fround(v) : v));
          const n = vals.length;
          const want = Float64Array.from(vals).sort();
          // Weight = original position: ties must keep row order.
          const order = Array.from({ length: n }, (_, i) => i).sort((a, b) =>
            vals[a]! < vals[b]!
              ? -1
              : vals[a]! > vals[b]!
                ? 1
                : Object.is(vals[a], -0) && !Object.is(vals[b], -0)
                  ? -1
                  : !Object.is(vals[a], -0) && Object.is(vals[b], -0)
                    ? 1
                    : a - b,
          );
          const ws = Float64Array.from({ length: n }, (_, i) => i);
          const v2 = Float64Array.from(vals);
          sortChunk(v2, ws, n, sc);
          for (let i = 0; i < n; i++) expect(Object.is(v2[i], want[i])).toBe(true);
          expect(Array.from(ws)).toEqual(order);
        },
      ),
      { numRuns: 300, seed: 5 },
    );
  });
});

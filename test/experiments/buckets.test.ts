import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BUCKETS,
  bucketCounts,
  bucketOf,
  fromRanges,
  hashPoint,
  initialAllocation,
  reallocate,
  toRanges,
} from "../../experiments/buckets.ts";
import { type Arm, ExperimentRouter } from "../../experiments/router.ts";

const N = 100_000;
const ids = Array.from({ length: N }, (_, i) => `student-${i}`);
const arms = (shares: number[]): Arm[] =>
  shares.map((share, i) => ({
    name: `arm${i}`,
    model: { name: "m", alias: i === 0 ? "champion" : "challenger" },
    share,
  }));

function router(
  salt: string,
  shares: number[],
  allocation = toRanges(initialAllocation(shares)),
): ExperimentRouter {
  return new ExperimentRouter({ experimentId: "exp", salt, arms: arms(shares), allocation });
}

describe("sticky hash assignment", () => {
  it("gives every arm its share within 1% over 100,000 ids", () => {
    const shares = [0.5, 0.3, 0.2];
    const r = router("salt-1", shares);
    const counts = [0, 0, 0];
    for (const id of ids) counts[r.assign(id).armIndex]! += 1;
    for (let a = 0; a < shares.length; a++) expect(Math.abs(counts[a]! / N - shares[a]!)).toBeLessThan(0.01);
  });

  it("never changes an id's arm across calls or a re-created router (restart, another server)", () => {
    const shares = [0.34, 0.33, 0.33];
    const first = router("salt-2", shares);
    const again = router("salt-2", shares); // a fresh instance, as after a restart
    const before = ids.map((id) => first.assign(id).arm);
    let changed = 0;
    for (let i = 0; i < N; i++) {
      if (first.assign(ids[i]!).arm !== before[i]) changed++;
      if (again.assign(ids[i]!).arm !== before[i]) changed++;
    }
    expect(changed).toBe(0);
    expect(new Set(before).size).toBe(3);
  });

  it("is keyed by the salt: another experiment's salt reshuffles students", () => {
    const a = router("salt-a", [0.5, 0.5]);
    const b = router("salt-b", [0.5, 0.5]);
    let same = 0;
    for (const id of ids.slice(0, 10_000)) if (a.assign(id).arm === b.assign(id).arm) same++;
    // Independent assignments agree about half the time.
    expect(same / 10_000).toBeGreaterThan(0.47);
    expect(same / 10_000).toBeLessThan(0.53);
  });

  it("reads the HMAC as a point in [0, 1) (known answer: first 48 bits of HMAC-SHA256)", () => {
    // `echo -n s | openssl dgst -sha256 -hmac k` = a754f4059b0a4c0a...; point = 0xa754f4059b0a / 2^48.
    const p = hashPoint("k", "s");
    expect(p).toBe(0xa754f4059b0a / 2 ** 48);
    expect(bucketOf(p)).toBe(Math.floor((0xa754f4059b0a / 2 ** 48) * BUCKETS));
    expect(bucketOf(0.99999999999)).toBe(BUCKETS - 1);
  });
});

describe("minimal movement on share change", () => {
  it("moves exactly the sum of positive share deltas (50/50 -> 70/30 moves 20% of students)", () => {
    const before = [0.5, 0.5];
    const after = [0.7, 0.3];
    const r1 = router("salt-3", before);
    const { owner, moved } = reallocate(initialAllocation(before), after);
    const r2 = router("salt-3", after, toRanges(owner));
    let movedStudents = 0;
    const counts = [0, 0];
    for (const id of ids) {
      const a = r1.assign(id).armIndex;
      const b = r2.assign(id).armIndex;
      if (a !== b) movedStudents++;
      counts[b]! += 1;
    }
    const theoreticalMin = 0.2; // sum of positive deltas: +0.2 for arm 0
    expect(moved).toBe(0.2 * BUCKETS);
    expect(Math.abs(movedStudents / N - theoreticalMin)).toBeLessThan(0.01);
    expect(Math.abs(counts[0]! / N - 0.7)).toBeLessThan(0.01);
  });

  it("beats a naive cumulative re-split with three arms (and hits the theoretical minimum)", () => {
    const before = [0.2, 0.3, 0.5];
    const after = [0.3, 0.3, 0.4];
    const { owner } = reallocate(initialAllocation(before), after);
    const r1 = router("salt-4", before);
    const minimal = router("salt-4", after, toRanges(owner));
    const naive = router("salt-4", after); // cumulative ranges recomputed from scratch
    let movedMinimal = 0;
    let movedNaive = 0;
    for (const id of ids) {
      const a = r1.assign(id).armIndex;
      if (minimal.assign(id).armIndex !== a) movedMinimal++;
      if (naive.assign(id).armIndex !== a) movedNaive++;
    }
    const theoreticalMin = 0.1; // only arm 0 grows, by 0.1
    expect(Math.abs(movedMinimal / N - theoreticalMin)).toBeLessThan(0.005);
    // Naive: arm1 shifts from [0.2,0.5) to [0.3,0.6): 0.1 + 0.1 move; about 20%.
    expect(movedNaive / N).toBeGreaterThan(0.18);
  });

  it("moves exactly sum(max(0, new - old)) buckets for any share change, and hits the target counts (property)", () => {
    const sharesArb = (k: number) =>
      fc
        .array(fc.integer({ min: 0, max: 1000 }), { minLength: k, maxLength: k })
        .filter((w) => w.some((x) => x > 0))
        .map((w) => {
          const s = w.reduce((a, b) => a + b, 0);
          return w.map((x) => x / s);
        });
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 5 }).chain((k) => fc.tuple(sharesArb(k), sharesArb(k), sharesArb(k))),
        ([s0, s1, s2]) => {
          let owner = initialAllocation(s0);
          for (const next of [s1, s2]) {
            const beforeCounts = countsOf(owner, next.length);
            const res = reallocate(owner, next);
            const target = bucketCounts(next);
            let minimum = 0;
            for (let a = 0; a < next.length; a++) minimum += Math.max(0, target[a]! - beforeCounts[a]!);
            let changed = 0;
            for (let b = 0; b < BUCKETS; b++) if (res.owner[b] !== owner[b]) changed++;
            if (res.moved !== minimum || changed !== minimum) return false;
            const got = new Int32Array(next.length);
            for (let b = 0; b < BUCKETS; b++) got[res.owner[b]!]! += 1;
            if (!got.every((c, a) => c === target[a])) return false;
            owner = res.owner;
          }
          return true;
        },
      ),
      { numRuns: 60 },
    );
  });

  it("round-trips the allocation through its stored ranges", () => {
    const { owner } = reallocate(initialAllocation([0.25, 0.25, 0.5]), [0.4, 0.1, 0.5]);
    expect(Array.from(fromRanges(toRanges(owner)))).toEqual(Array.from(owner));
  });

  it("rejects shares that do not sum to 1", () => {
    expect(() => bucketCounts([0.5, 0.4])).toThrow(/must sum to 1/);
    expect(() => bucketCounts([1.5, -0.5])).toThrow(/>= 0/);
  });
});

/** Buckets owned per arm. */
function countsOf(owner: Int32Array, arms: number): number[] {
  const c = new Array<number>(arms).fill(0);
  for (let b = 0; b < BUCKETS; b++) c[owner[b]!]! += 1;
  return c;
}

import { createHmac } from "node:crypto";

/**
 * Sticky, stateless arm assignment over a fixed set of hash buckets.
 *
 * A student's point is HMAC-SHA256(salt, studentKey) read as a number in [0, 1); the point falls in
 * one of BUCKETS equal buckets, and each bucket is owned by one arm. The same key and salt give the
 * same bucket on every call, process and server; the only state is the experiment's bucket
 * ownership (stored with the experiment as ranges). When shares change, `reallocate` moves the
 * fewest buckets possible: only the surplus of shrinking arms goes to growing arms, so the share
 * of students who switch arm equals the sum of the positive share deltas (to 1/BUCKETS).
 */
export const BUCKETS = 10_000;

export class AllocationError extends Error {
  readonly code = "EXPERIMENT_SHARES";
  constructor(message: string) {
    super(message);
    this.name = "AllocationError";
  }
}

/** HMAC-SHA256(salt, studentKey) -> [0, 1), from the digest's first 48 bits (exact in a double). */
export function hashPoint(salt: string, studentKey: string): number {
  const d = createHmac("sha256", salt).update(studentKey).digest();
  return d.readUIntBE(0, 6) / 2 ** 48;
}

export function bucketOf(point: number): number {
  return Math.min(BUCKETS - 1, Math.floor(point * BUCKETS));
}

/** Checks shares are finite, >= 0 and sum to 1 (within 1e-9). */
export function validateShares(shares: readonly number[]): void {
  if (shares.length === 0) throw new AllocationError("an experiment needs at least one arm");
  let sum = 0;
  shares.forEach((s, i) => {
    if (!Number.isFinite(s) || s < 0)
      throw new AllocationError(`share of arm ${i} must be a number >= 0 (got ${s})`);
    sum += s;
  });
  if (Math.abs(sum - 1) > 1e-9)
    throw new AllocationError(`traffic shares must sum to 1 (got ${shares.join(" + ")} = ${sum})`);
}

/** Buckets per arm: shares x BUCKETS rounded by largest remainder, so the counts sum to exactly BUCKETS. */
export function bucketCounts(shares: readonly number[]): Int32Array {
  validateShares(shares);
  const counts = new Int32Array(shares.length);
  const rem: { i: number; r: number }[] = [];
  let used = 0;
  shares.forEach((s, i) => {
    const exact = s * BUCKETS;
    counts[i] = Math.floor(exact + 1e-9);
    used += counts[i]!;
    rem.push({ i, r: exact - counts[i]! });
  });
  rem.sort((a, b) => b.r - a.r || a.i - b.i);
  for (let k = 0; used < BUCKETS; k++, used++) counts[rem[k % rem.length]!.i]! += 1;
  return counts;
}

/** Initial ownership: arm 0 owns the first count[0] buckets, arm 1 the next, ... */
export function initialAllocation(shares: readonly number[]): Int32Array {
  const counts = bucketCounts(shares);
  const owner = new Int32Array(BUCKETS);
  let b = 0;
  for (let arm = 0; arm < counts.length; arm++) for (let k = 0; k < counts[arm]!; k++) owner[b++] = arm;
  return owner;
}

/**
 * New ownership for `shares` that changes the owner of as few buckets as possible. Arms indexed past
 * the current arm count are new arms (they start with no bucket). Each shrinking arm releases its
 * highest-numbered surplus buckets; growing arms (in arm order) take released buckets in ascending
 * order. Moved buckets = sum over arms of max(0, newCount - oldCount), the minimum any reassignment
 * can achieve, since every growing arm must receive at least that many buckets from others.
 */
export function reallocate(
  current: Int32Array,
  shares: readonly number[],
): { owner: Int32Array; moved: number } {
  const target = bucketCounts(shares);
  const arms = shares.length;
  const have = new Int32Array(arms);
  for (let b = 0; b < BUCKETS; b++) {
    const a = current[b]!;
    if (a >= arms)
      throw new AllocationError(
        `arm ${a} owns buckets but the new shares list only ${arms} arms; give removed arms a share of 0 instead`,
      );
    have[a]! += 1;
  }
  const owner = Int32Array.from(current);
  const freed: number[] = [];
  const surplus = new Int32Array(arms);
  for (let a = 0; a < arms; a++) surplus[a] = Math.max(0, have[a]! - target[a]!);
  for (let b = BUCKETS - 1; b >= 0; b--) {
    const a = owner[b]!;
    if (surplus[a]! > 0) {
      surplus[a]! -= 1;
      freed.push(b);
    }
  }
  freed.sort((x, y) => x - y);
  let k = 0;
  let moved = 0;
  for (let a = 0; a < arms; a++) {
    const need = target[a]! - have[a]!;
    for (let j = 0; j < need; j++) {
      owner[freed[k++]!] = a;
      moved++;
    }
  }
  return { owner, moved };
}

/** Compact form for storage: [start, endExclusive, arm] runs. */
export function toRanges(owner: Int32Array): [number, number, number][] {
  const out: [number, number, number][] = [];
  let start = 0;
  for (let b = 1; b <= BUCKETS; b++) {
    if (b === BUCKETS || owner[b] !== owner[start]) {
      out.push([start, b, owner[start]!]);
      start = b;
    }
  }
  return out;
}

export function fromRanges(ranges: readonly (readonly [number, number, number])[]): Int32Array {
  const owner = new Int32Array(BUCKETS).fill(-1);
  for (const [s, e, a] of ranges) owner.fill(a, s, e);
  if (owner.includes(-1))
    throw new AllocationError("stored allocation does not cover all buckets; the experiment row is corrupt");
  return owner;
}

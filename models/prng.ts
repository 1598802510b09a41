/**
 * Seeded pseudo-random numbers for reproducible simulations (same seed -> same stream on every
 * platform; nothing here reads Math.random or the clock).
 *
 * Generator: xoshiro128** 1.0 (Blackman & Vigna, "Scrambled linear pseudorandom number
 * generators", 2018), 128-bit state, 32-bit outputs. State is seeded by SplitMix32-style
 * mixing of (seed, stream) so independent streams (one per student, one per topic, ...) can be
 * derived from one user seed without sharing state between them.
 */

/** Murmur3 fmix32 finalizer: a bijective avalanche mix of a 32-bit integer. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

const TWO_POW_32 = 4294967296;

export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** Second Box-Muller variate, kept for the next normal() call. */
  private spare = 0;
  private hasSpare = false;

  /**
   * @param seed any integer in [0, 2^53) (the user seed)
   * @param stream an integer naming an independent stream (e.g. a student index)
   */
  constructor(seed: number, stream = 0) {
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_POW_32) >>> 0;
    // SplitMix-style: walk a Weyl sequence from a mixed starting point; never all-zero state.
    let z = mix32(lo ^ mix32(hi ^ 0x9e3779b9) ^ mix32((stream >>> 0) + 0x632be5ab));
    const step = () => {
      z = (z + 0x9e3779b9) >>> 0;
      return mix32(z);
    };
    this.s0 = step();
    this.s1 = step();
    this.s2 = step();
    this.s3 = step() | 1;
  }

  /** A generator with an explicit state (for known-answer tests against the reference C code). */
  static fromState(s0: number, s1: number, s2: number, s3: number): Xoshiro128 {
    const g = new Xoshiro128(0);
    g.s0 = s0 | 0;
    g.s1 = s1 | 0;
    g.s2 = s2 | 0;
    g.s3 = s3 | 0;
    return g;
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const s1 = this.s1;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextU32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal by the polar Box-Muller method (Marsaglia & Bray 1964). */
  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.next() - 1;
      v = 2 * this.next() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * f;
    this.hasSpare = true;
    return u * f;
  }

  /**
   * Poisson variate. Knuth's product method for small means (exact); for lambda > 30 a rounded
   * normal approximation, which is accurate to well under 1% in mean and variance there.
   */
  poisson(lambda: number): number {
    if (lambda <= 0) return 0;
    if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * this.normal()));
    const limit = Math.exp(-lambda);
    let k = 0;
    let p = this.next();
    while (p > limit) {
      k++;
      p *= this.next();
    }
    return k;
  }

  /** Binomial(n, p) by summing Bernoulli trials; meant for the small n (< 100) of a simulation. */
  binomial(n: number, p: number): number {
    let k = 0;
    for (let i = 0; i < n; i++) if (this.next() < p) k++;
    return k;
  }
}

/**
 * mulberry32 (Tommy Ettinger, public domain): a 32-bit-state PRNG returning uniforms in [0, 1).
 * Small and fast; used where one short stream per seed is enough (EM restarts, row sampling,
 * weight init, test data).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / TWO_POW_32;
  };
}

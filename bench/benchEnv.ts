/** What the serving benches share: their services' URLs, bench-only secrets, numeric env knobs. */

/** JWT secret and pseudonym key of the bench servers (never a deployment's). */
export const BENCH_SECRET = "bench-secret-bench-secret-bench-secret";
export const BENCH_PSEUDONYM_KEY = "bench-pseudonym-key-0123456789";
export const BENCH_PG_URL = process.env.MASTERY_PG_URL || "postgres://postgres@127.0.0.1:5432/test";
export const BENCH_REDIS_URL = process.env.MASTERY_REDIS_URL || "redis://127.0.0.1:6379";

/** A positive number from the environment variable `name`, else `fallback`; says what is wrong otherwise. */
export function envNumber(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`${name}=${v} must be a positive number (e.g. ${fallback})`);
  return n;
}

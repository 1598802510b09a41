/** What the serving benches share: their services' URLs, bench-only secrets, numeric env knobs, POST bodies. */

/** JWT secret and pseudonym key of the bench servers (never a deployment's). */
export const BENCH_SECRET = "bench-secret-bench-secret-bench-secret";
export const BENCH_PSEUDONYM_KEY = "bench-pseudonym-key-0123456789";
export const BENCH_PG_URL = process.env.MASTERY_PG_URL || "postgres://postgres@127.0.0.1:5432/test";
export const BENCH_REDIS_URL = process.env.MASTERY_REDIS_URL || "redis://127.0.0.1:6379";
export const BENCH_NATS_URL = process.env.MASTERY_NATS_URL || "nats://127.0.0.1:4222";

/** A positive number from the environment variable `name`, else `fallback`; says what is wrong otherwise. */
export function envNumber(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`${name}=${v} must be a positive number (e.g. ${fallback})`);
  return n;
}

/** Events in one bench POST /events batch. */
export const POST_BATCH = 10;

/**
 * A POST /events body of POST_BATCH quiz attempts of one student; the n-th event of the run (n from
 * `first`) has id `${idPrefix}-${n}`, topic T(n mod topics) and a time n seconds into 2026-01-06 08:00.
 */
export function quizPostBody(idPrefix: string, student: number, first: number, topics: number): string {
  const events = [];
  for (let n = first; n < first + POST_BATCH; n++) {
    events.push({
      event_id: `${idPrefix}-${n}`,
      type: "quiz_attempt",
      student_id: `student-${student}`,
      topic_id: `T${n % topics}`,
      timestamp: new Date(Date.UTC(2026, 0, 6, 8) + n * 1000).toISOString(),
      question_id: `q-${n % 50}`,
      is_correct: n % 3 !== 0,
      time_spent_sec: 20,
    });
  }
  return JSON.stringify({ events });
}

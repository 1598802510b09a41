/**
 * Pseudonymization of student ids: student_key = hex of HMAC-SHA256(key, raw id) truncated to its
 * first 128 bits (32 hex characters).
 *
 * A keyed HMAC rather than a plain hash because student ids are short and guessable: without the
 * key nobody can rebuild the id -> key table by hashing candidate ids. The same key always gives
 * the same student_key (so re-ingesting is idempotent); rotating the key breaks the link on purpose.
 *
 * Truncation to 128 bits: RFC 2104 section 5 allows truncating an HMAC to its leftmost bits (no fewer
 * than half the hash output, here 128 of 256), and 128 bits leave collisions negligible (birthday
 * bound ~2^64 students). Half the length halves what every table, join key and index over
 * student_key carries (raw_events, features, student_mastery's primary key), which is most of the
 * batch pipeline's string work. Stores built with the former 64-character keys must be re-ingested,
 * as after a key rotation.
 */
import { createHmac } from "node:crypto";

export const PSEUDONYM_KEY_ENV = "MASTERY_PSEUDONYM_KEY";

/**
 * Key used in demo mode only (synthetic data, `mastery demo`, `--demo`). It is public, so demo
 * pseudonyms are NOT private: never use demo mode on real student data.
 */
export const DEMO_PSEUDONYM_KEY = "mastery-engine-demo-key-not-secret";

/** Shortest accepted key, in characters; 32 hex chars = 128 bits. */
export const MIN_KEY_LENGTH = 16;

/** Hex characters kept from the HMAC-SHA256 digest: 32 = 128 bits (RFC 2104 truncation to half). */
export const STUDENT_KEY_HEX_CHARS = 32;

export class PseudonymKeyError extends Error {
  readonly code = "PSEUDONYM_KEY";
  constructor(message: string) {
    super(message);
    this.name = "PseudonymKeyError";
  }
}

export class Pseudonymizer {
  private readonly cache = new Map<string, string>();

  constructor(private readonly key: string) {
    if (key.length < MIN_KEY_LENGTH) {
      throw new PseudonymKeyError(
        `${PSEUDONYM_KEY_ENV} must be at least ${MIN_KEY_LENGTH} characters (got ${key.length}); ` +
          `generate one with: export ${PSEUDONYM_KEY_ENV}=$(openssl rand -hex 32)`,
      );
    }
  }

  /** The pseudonym of one raw student id (32 lower-case hex characters). */
  studentKey(rawId: string): string {
    let k = this.cache.get(rawId);
    if (k === undefined) {
      k = createHmac("sha256", this.key).update(rawId, "utf8").digest("hex").slice(0, STUDENT_KEY_HEX_CHARS);
      // The cache only bounds repeated work within a batch; cap it so a long-lived server stays small.
      if (this.cache.size > 1_000_000) this.cache.clear();
      this.cache.set(rawId, k);
    }
    return k;
  }
}

export interface KeyOptions {
  /** Demo mode: fall back to DEMO_PSEUDONYM_KEY (with a warning) when no key is configured. */
  demo?: boolean;
  env?: NodeJS.ProcessEnv;
  warn?: (message: string) => void;
}

/**
 * The configured pseudonymizer. Refuses to run without MASTERY_PSEUDONYM_KEY unless in demo mode
 * (`demo: true`, i.e. an explicit --demo flag), where the documented public demo key is used with a
 * warning. An environment variable alone (MASTERY_DEMO=1, NODE_ENV) never switches to the public key.
 */
export function pseudonymizerFromEnv(opts: KeyOptions = {}): Pseudonymizer {
  const env = opts.env ?? process.env;
  const key = env[PSEUDONYM_KEY_ENV];
  if (key !== undefined && key !== "") return new Pseudonymizer(key);
  if (opts.demo !== true) {
    throw new PseudonymKeyError(
      `${PSEUDONYM_KEY_ENV} is not set: student ids are pseudonymized with a secret HMAC key before ` +
        `storage. Set it, e.g. export ${PSEUDONYM_KEY_ENV}=$(openssl rand -hex 32), and keep it stable ` +
        "(changing it changes every student_key). For synthetic demo data only, pass --demo.",
    );
  }
  (opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`)))(
    `demo mode: pseudonymizing with the public demo key; set ${PSEUDONYM_KEY_ENV} before ingesting real student data`,
  );
  return new Pseudonymizer(DEMO_PSEUDONYM_KEY);
}

import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import type { AlertCandidate, AlertStateRow, AlertStore } from "../storage/alertStore.ts";
import type { DuckStore } from "../storage/duckdb.ts";
import { sourceRank } from "./masteryReadStore.ts";
import { rowAtReadTime, scoreRowNeeds } from "./masteryView.ts";
import { readTimeScoreSql } from "./readTimeScoreSql.ts";
import { explanationText } from "./storedExplanations.ts";
import { type ApplyResult, alertKeys, type UpdatedKey } from "./updater.ts";

/**
 * The row of a key the check reads: the one served without an experiment arm or a configured order (the
 * teacher's override, then DEFAULT_SOURCE_ORDER), with its text when its source is scored from it at read
 * time (rule_based, the decaying sources).
 */
const CHECKED_ROW = scoreRowNeeds({});

/**
 * At-risk alerts: when a student's served mastery on a topic drops below the threshold of their
 * school and grade (config/thresholds.yaml), one alert row is written and every configured webhook
 * is called with it. One crossing raises one alert: alert_state remembers that the key is below (a key
 * never seen below has no row: a row is written only when a check moves the state), and it re-arms only when the score comes back to threshold + hysteresis or above (so a score
 * hovering at the threshold does not flood teachers). The alert id is a hash of (student, topic,
 * rule, crossing number): the same crossing always has the same id, sent as Idempotency-Key.
 *
 * Webhooks are signed like Stripe's: X-Mastery-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<body>" with the webhook's secret>; receivers check it with `verifyWebhookSignature`.
 * Delivery is retried with exponential backoff (base · 2^(attempt-1)) on network errors and non-2xx
 * answers; every attempt is logged in webhook_deliveries.
 */
export const DEFAULT_THRESHOLDS = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "config",
  "thresholds.yaml",
);
export const RULE = "at_risk";

export interface ThresholdConfig {
  atRisk: number;
  hysteresis: number;
  /**
   * How far back a starting server re-checks keys whose score moved (minutes; 0: off): the checks a
   * stopped process had queued after its answers (recoverAlertChecks).
   */
  recoveryMinutes: number;
  schools: Map<string, { atRisk: number | undefined; grades: Map<number, number> }>;
  webhooks: WebhookTarget[];
}

export interface WebhookTarget {
  url: string;
  secret: string;
}

export class AlertConfigError extends Error {
  readonly code = "ALERT_CONFIG";
  constructor(message: string) {
    super(message);
    this.name = "AlertConfigError";
  }
}

const unit = (v: unknown, where: string): number => {
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
    throw new AlertConfigError(`${where} must be a number in [0, 1] (got ${JSON.stringify(v)})`);
  }
  return v;
};

const minutes = (v: unknown, where: string): number => {
  if (typeof v !== "number" || !(v >= 0 && v <= 7 * 24 * 60)) {
    throw new AlertConfigError(
      `${where} must be a number of minutes in [0, 10080] (got ${JSON.stringify(v)}); e.g. 2 (the default), or 0 to turn it off`,
    );
  }
  return v;
};

/** Parses config/thresholds.yaml (see the file for the layout); webhook secrets come from env. */
export function parseThresholds(
  doc: unknown,
  env: NodeJS.ProcessEnv = process.env,
  source = "thresholds",
): ThresholdConfig {
  const d = (doc ?? {}) as Record<string, unknown>;
  const def = (d.default ?? {}) as Record<string, unknown>;
  const cfg: ThresholdConfig = {
    atRisk: unit(def.at_risk ?? 0.4, `${source}: default.at_risk`),
    hysteresis: unit(d.hysteresis ?? 0.05, `${source}: hysteresis`),
    recoveryMinutes: minutes(d.recovery_minutes ?? 2, `${source}: recovery_minutes`),
    schools: new Map(),
    webhooks: [],
  };
  for (const [school, v] of Object.entries((d.schools ?? {}) as Record<string, unknown>)) {
    const s = (v ?? {}) as Record<string, unknown>;
    const grades = new Map<number, number>();
    for (const [g, t] of Object.entries((s.grades ?? {}) as Record<string, unknown>)) {
      const grade = Number(g);
      if (!Number.isInteger(grade))
        throw new AlertConfigError(`${source}: schools.${school}.grades: "${g}" is not a grade`);
      grades.set(grade, unit(t, `${source}: schools.${school}.grades.${g}`));
    }
    cfg.schools.set(school, {
      atRisk: s.at_risk === undefined ? undefined : unit(s.at_risk, `${source}: schools.${school}.at_risk`),
      grades,
    });
  }
  for (const [i, w] of ((d.webhooks ?? []) as Record<string, unknown>[]).entries()) {
    if (typeof w.url !== "string") throw new AlertConfigError(`${source}: webhooks[${i}].url is required`);
    const secretEnv = typeof w.secret_env === "string" ? w.secret_env : "MASTERY_WEBHOOK_SECRET";
    const secret = env[secretEnv];
    if (secret === undefined || secret === "") {
      throw new AlertConfigError(`${source}: webhooks[${i}] needs its signing secret in env ${secretEnv}`);
    }
    cfg.webhooks.push({ url: w.url, secret });
  }
  return cfg;
}

export function loadThresholds(
  path = DEFAULT_THRESHOLDS,
  env: NodeJS.ProcessEnv = process.env,
): ThresholdConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new AlertConfigError(`cannot read thresholds ${path}: ${(err as Error).message}`);
  }
  return parseThresholds(parseYaml(text), env, path);
}

/** Most specific wins: school + grade, then school, then the default. */
export function thresholdFor(cfg: ThresholdConfig, school: string | null, grade: number | null): number {
  const s = school === null ? undefined : cfg.schools.get(school);
  if (s !== undefined) {
    if (grade !== null) {
      const g = s.grades.get(grade);
      if (g !== undefined) return g;
    }
    if (s.atRisk !== undefined) return s.atRisk;
  }
  return cfg.atRisk;
}

/** The highest threshold of the config (default, schools, grades). */
export function maxThreshold(cfg: ThresholdConfig): number {
  let m = cfg.atRisk;
  for (const s of cfg.schools.values()) {
    if (s.atRisk !== undefined) m = Math.max(m, s.atRisk);
    for (const g of s.grades.values()) m = Math.max(m, g);
  }
  return m;
}

/**
 * Keys whose score can have crossed under a threshold with time alone (issue 17 item 3): rule scores
 * (evidence decayed and recency applied at read time) and served scores (decay) move without new events, so no POST /events or
 * stream check sees those crossings. Every key with a rule_based or served row whose score as of `at`
 * (serving/readTimeScoreSql.ts) is under the highest threshold and whose alert state is not already
 * "below": a superset of the crossings, which AlertEngine.check then decides exactly (served source,
 * the key's own threshold, one alert per crossing). Keys already below that rise again with time alone
 * are re-armed at their next event's check, not here.
 */
export async function timeCrossingKeys(
  store: DuckStore,
  at: Date,
  cfg: ThresholdConfig,
): Promise<UpdatedKey[]> {
  const rows = await store.all<{ student_key: string; topic_id: string }>(
    `SELECT DISTINCT m.student_key, m.topic_id
     FROM student_mastery m LEFT JOIN alert_state s USING (student_key, topic_id)
     WHERE m.score_source IN ('rule_based', 'served') AND s.below IS NOT TRUE
       AND ${readTimeScoreSql("m", "$at::BIGINT", { served: true })} < $max
     ORDER BY 1, 2`,
    { at: BigInt(at.getTime()) * 1000n, max: maxThreshold(cfg) },
  );
  return rows.map((r) => ({ studentKey: r.student_key, topicId: r.topic_id }));
}

/** The daily batch's alert pass: timeCrossingKeys checked by `engine` in groups; returns the alerts raised. */
export async function checkTimeCrossings(
  store: DuckStore,
  engine: AlertEngine,
  at: Date,
  cfg: ThresholdConfig,
  group = 5000,
): Promise<{ candidates: number; raised: AlertPayload[] }> {
  const keys = await timeCrossingKeys(store, at, cfg);
  const raised: AlertPayload[] = [];
  for (let i = 0; i < keys.length; i += group) raised.push(...(await engine.check(keys.slice(i, i + group))));
  await engine.drain();
  return { candidates: keys.length, raised };
}

/**
 * A starting server's catch-up of the alert checks a stopped process had queued after its answers
 * (serving/deferredAlertChecks.ts keeps them in memory): every key whose score moved within
 * `cfg.recoveryMinutes` before `at` is queued for a check through `enqueue`, at most `limit` of them, the
 * newest first. A check is idempotent (one alert per crossing, a compare-and-set on alert_state), so keys
 * that were checked already raise nothing again. Returns how many keys were queued.
 */
export async function recoverAlertChecks(
  store: Pick<AlertStore, "recentlyScored">,
  cfg: ThresholdConfig,
  at: Date,
  enqueue: (keys: readonly UpdatedKey[]) => void,
  limit = 200_000,
): Promise<number> {
  if (cfg.recoveryMinutes <= 0) return 0;
  const keys = await store.recentlyScored(new Date(at.getTime() - cfg.recoveryMinutes * 60_000), limit);
  if (keys.length > 0) enqueue(keys);
  return keys.length;
}

export interface AlertPayload {
  alertId: string;
  rule: string;
  studentKey: string;
  topicId: string;
  score: number;
  scoreSource: string;
  threshold: number;
  schoolId: string | null;
  grade: number | null;
  crossing: number;
  createdAt: string;
}

export function signWebhook(secret: string, body: string, tSec: number): string {
  const mac = createHmac("sha256", secret).update(`${tSec}.${body}`).digest("hex");
  return `t=${tSec},v1=${mac}`;
}

/** True when `header` is a valid signature of `body` made within `toleranceSec` of `nowSec`. */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined,
  body: string,
  nowSec = Date.now() / 1000,
  toleranceSec = 300,
): boolean {
  if (header === undefined) return false;
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(nowSec - t) > toleranceSec) return false;
  const expected = Buffer.from(createHmac("sha256", secret).update(`${t}.${body}`).digest("hex"));
  const got = Buffer.from(m[2]!);
  return expected.length === got.length && timingSafeEqual(expected, got);
}

export interface AlertEngineOptions {
  /**
   * Serializes store access with the rest of the process (the embedded server's StoreGate);
   * default: direct (a PostgreSQL pool needs none).
   */
  withStore?: <T>(fn: () => Promise<T>) => Promise<T>;
  retry?: { attempts: number; baseMs: number };
  now?: () => Date;
  fetchImpl?: typeof fetch;
  onAlert?: (a: AlertPayload) => void;
  onDelivery?: (outcome: "ok" | "retry" | "failed") => void;
}

export class AlertEngine {
  private readonly pending = new Set<Promise<void>>();

  /** `store`: where the scores live (storage/alertStore.ts); the alert tables are kept there too. */
  constructor(
    private readonly store: AlertStore,
    private readonly cfg: ThresholdConfig,
    private readonly opts: AlertEngineOptions = {},
  ) {}

  /** Where the alert state lives ("duckdb" or "postgres"). */
  get storeKind(): AlertStore["kind"] {
    return this.store.kind;
  }

  /**
   * Checks the served score of each key against its threshold; returns the alerts raised. One read
   * statement for the whole group (scores, alert state, school/grade) and one write transaction.
   * On the embedded store it must be called where the store is serialized (the POST /events group
   * step); deliveries run afterwards, outside it.
   */
  async check(keys: readonly UpdatedKey[]): Promise<AlertPayload[]> {
    if (keys.length === 0) return [];
    const now = this.opts.now?.() ?? new Date();
    const rank = (s: string) => sourceRank(s, CHECKED_ROW.order, CHECKED_ROW.first);
    // The served row of each key is picked by its source alone, so only that row is brought to check
    // time (rowAtReadTime parses a rule row's explanation: with bkt served, the rule row's was parsed for
    // nothing on every POST); a store that can (PostgreSQL) reads that row alone, with its text only when
    // rowAtReadTime reads it.
    const served = new Map<string, AlertCandidate>();
    for (const r of await this.store.candidates(keys, CHECKED_ROW)) {
      const k = `${r.student_key}\u0000${r.topic_id}`;
      const cur = served.get(k);
      if (cur === undefined || rank(r.score_source) < rank(cur.score_source)) served.set(k, r);
    }
    const raised: AlertPayload[] = [];
    const states: AlertStateRow[] = [];
    for (const stored of served.values()) {
      // Scores as a reader sees them at check time: a rule score as of now, a served score
      // decayed to now (serving/masteryView.ts rowAtReadTime). So a score that decayed under the threshold
      // without new events raises its alert the next time its key is checked.
      // A batch rule row's text is rendered from its block (the check reads it as of now); a bkt / elo row's
      // is not read here.
      if (stored.explanation_numbers !== undefined && stored.score_source === "rule_based") {
        stored.explanation = explanationText(
          stored.explanation,
          stored.explanation_numbers,
          stored.mastery_score,
        );
        delete stored.explanation_numbers;
      }
      const r = rowAtReadTime(stored, now);
      const school = r.school_id ?? null;
      const grade = r.grade === null || r.grade === undefined ? null : Number(r.grade);
      const threshold = thresholdFor(this.cfg, school, grade);
      const wasBelow = r.below === true;
      let crossings = r.crossings === null || r.crossings === undefined ? 0 : Number(r.crossings);
      let below = wasBelow;
      if (!wasBelow && r.mastery_score < threshold) {
        below = true;
        crossings++;
        const alertId = createHash("sha256")
          .update(`${r.student_key}|${r.topic_id}|${RULE}|${crossings}`)
          .digest("hex")
          .slice(0, 32);
        raised.push({
          alertId,
          rule: RULE,
          studentKey: r.student_key,
          topicId: r.topic_id,
          score: r.mastery_score,
          scoreSource: r.score_source,
          threshold,
          schoolId: school,
          grade,
          crossing: crossings,
          createdAt: now.toISOString(),
        });
      } else if (wasBelow && r.mastery_score >= threshold + this.cfg.hysteresis) {
        below = false;
      }
      // A state is stored only when the check moves it. A first check that finds the key above its threshold
      // stores nothing: no row reads as (above, 0 crossings) already, and a stored (above, 0) row made a
      // concurrent first crossing of the same key (another checker, whose insert expects no row) lose its alert.
      if (below !== wasBelow)
        states.push({
          studentKey: r.student_key,
          topicId: r.topic_id,
          below,
          crossings,
          // What this check read: the store moves the state only if it is still that (no other checker moved it).
          prev:
            r.below === null
              ? null
              : { below: r.below, crossings: r.crossings === null ? 0 : Number(r.crossings) },
        });
    }
    // Only the alerts this call stored are delivered: a crossing another checker (a second worker)
    // already stored, or whose state it moved first, is skipped, so one crossing calls each webhook once.
    const inserted = await this.store.record(raised, states, now);
    const fresh = raised.filter((a) => inserted.has(a.alertId));
    for (const a of fresh) {
      this.opts.onAlert?.(a);
      for (const w of this.cfg.webhooks) this.track(this.deliver(w, a));
    }
    return fresh;
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Resolves when every delivery started so far has succeeded or given up. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private async deliver(w: WebhookTarget, a: AlertPayload): Promise<void> {
    const { attempts, baseMs } = this.opts.retry ?? { attempts: 5, baseMs: 500 };
    const body = JSON.stringify(a);
    const doFetch = this.opts.fetchImpl ?? fetch;
    const withStore = this.opts.withStore ?? ((fn) => fn());
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const t = Math.floor((this.opts.now?.() ?? new Date()).getTime() / 1000);
      let status: number | null = null;
      let error: string | null = null;
      try {
        const res = await doFetch(w.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "idempotency-key": a.alertId,
            "x-mastery-signature": signWebhook(w.secret, body, t),
          },
          body,
          signal: AbortSignal.timeout(10_000),
        });
        status = res.status;
        await res.arrayBuffer().catch(() => undefined);
        if (!res.ok) error = `HTTP ${res.status}`;
      } catch (err) {
        error = (err as Error).message;
      }
      await withStore(() =>
        this.store.logDelivery({ alertId: a.alertId, url: w.url, attempt, status, error }, new Date()),
      ).catch(() => undefined);
      if (error === null) {
        this.opts.onDelivery?.("ok");
        return;
      }
      if (attempt === attempts) {
        this.opts.onDelivery?.("failed");
        return;
      }
      this.opts.onDelivery?.("retry");
      await new Promise((r) => setTimeout(r, baseMs * 2 ** (attempt - 1)));
    }
  }
}

/**
 * The alert check as a step after an apply (the stream worker's afterApply): every key of the batch,
 * duplicates included (updater.ts alertKeys: a redelivered batch whose first check never ran), checked
 * in one call. Errors propagate to the caller, which logs them and keeps the events.
 */
export function alertsAfterApply(engine: AlertEngine): (results: readonly ApplyResult[]) => Promise<void> {
  return async (results) => {
    const keys = alertKeys(results);
    if (keys.length > 0) await engine.check(keys);
  };
}

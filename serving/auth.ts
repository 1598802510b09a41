/**
 * Bearer-token access control for the HTTP API: HS256 JWTs (jose) with a shared secret from
 * MASTERY_JWT_SECRET, and the ownership rules of each role.
 *
 * Claims (decided here, documented in serving/README.md):
 *  - role: student | parent | teacher | admin | service
 *  - sub: the RAW LMS id of the caller. The LMS that mints tokens only knows raw ids; the server
 *    pseudonymizes `sub` (students) and `children[]` (parents) when the token is verified, keeps
 *    only the keys, and never logs or stores the raw values.
 *  - parent: children[] (raw student ids); teacher: classes[] (class ids of the roster, see below);
 *    service: scopes[] (e.g. events:write, mastery:read, feedback:write, score:write, metrics:read,
 *    models:read, experiments:read, roster:read, roster:write). models:write and experiments:write are
 *    admin-only whatever the scopes.
 *  - exp is REQUIRED and bounded: a token without exp, or whose lifetime (exp - iat, and exp - now)
 *    exceeds the maximum (MASTERY_JWT_MAX_TTL, default 24h), is refused with 401 and the reason. A
 *    verified token is cached only until its exp. nbf/iat as jose checks them.
 *
 * Teacher access comes from the class ROSTER (storage/rosterStore.ts), never from events' class_id
 * (an events:write service could otherwise enrol any student in any class by posting an event): a
 * teacher may use a roster class when the roster names them among its teachers or, for a class whose
 * roster names no teachers, when their token's classes[] claim lists it.
 */
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { Pseudonymizer } from "../features/pseudonymize.ts";

export const JWT_SECRET_ENV = "MASTERY_JWT_SECRET";
/** Public secret for `--demo` only (like the demo pseudonym key): never on real data. */
export const DEMO_JWT_SECRET = "mastery-engine-demo-jwt-secret-not-secret";
export const MIN_SECRET_LENGTH = 32;
/** Longest token lifetime accepted (and minted by `mastery token`), e.g. "24h", "90m", "3600". */
export const JWT_MAX_TTL_ENV = "MASTERY_JWT_MAX_TTL";
export const DEFAULT_MAX_TTL_SEC = 24 * 3600;

export const ROLES = ["student", "parent", "teacher", "admin", "service"] as const;
export type Role = (typeof ROLES)[number];

/** What a request wants to do. */
export const SCOPES = [
  "mastery:read",
  "events:write",
  "feedback:write",
  "score:write",
  "metrics:read",
  "models:read",
  "models:write",
  "experiments:read",
  "experiments:write",
  "roster:read",
  "roster:write",
] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  role: Role;
  /** Raw sub for staff and services (used as the audit actor); the student key for students. */
  actor: string;
  /** Students: their own key; parents: their children's keys. */
  studentKeys: ReadonlySet<string>;
  classes: ReadonlySet<string>;
  scopes: ReadonlySet<string>;
  /** Expiry in epoch seconds (required; cached tokens are re-checked against it). */
  exp: number;
}

/** 401 (who are you?) or 403 (not allowed); `reason` says which rule failed. */
export class AccessError extends Error {
  readonly code: "UNAUTHORIZED" | "FORBIDDEN";
  constructor(
    readonly status: 401 | 403,
    readonly field: string,
    readonly reason: string,
  ) {
    super(reason);
    this.code = status === 401 ? "UNAUTHORIZED" : "FORBIDDEN";
    this.name = "AccessError";
  }
}

export class JwtSecretError extends Error {
  readonly code = "JWT_SECRET";
  constructor(message: string) {
    super(message);
    this.name = "JwtSecretError";
  }
}

/**
 * The secret from MASTERY_JWT_SECRET. Without one it refuses, unless `demo` is set explicitly (the
 * `--demo` flag): then the PUBLIC demo secret is used and a loud warning goes to stderr. Neither
 * NODE_ENV=test nor MASTERY_DEMO=1 switches to it (anyone could mint admin tokens with it).
 */
export function jwtSecretFromEnv(
  opts: { demo?: boolean; env?: NodeJS.ProcessEnv; warn?: (message: string) => void } = {},
): string {
  const env = opts.env ?? process.env;
  const s = env[JWT_SECRET_ENV];
  if (s !== undefined && s !== "") {
    if (s.length < MIN_SECRET_LENGTH) {
      throw new JwtSecretError(
        `${JWT_SECRET_ENV} must be at least ${MIN_SECRET_LENGTH} characters (got ${s.length}); ` +
          `generate one with: export ${JWT_SECRET_ENV}=$(openssl rand -hex 32)`,
      );
    }
    return s;
  }
  if (opts.demo === true) {
    (opts.warn ?? ((m: string) => process.stderr.write(`${m}\n`)))(DEMO_SECRET_WARNING);
    return DEMO_JWT_SECRET;
  }
  throw new JwtSecretError(
    `${JWT_SECRET_ENV} is not set: the API verifies HS256 bearer tokens with it. Set it, e.g. ` +
      `export ${JWT_SECRET_ENV}=$(openssl rand -hex 32), or pass --demo for synthetic data only.`,
  );
}

export const DEMO_SECRET_WARNING = [
  "!!! WARNING: --demo: API tokens are verified with the PUBLIC demo secret",
  `!!! (${DEMO_JWT_SECRET}). Anyone can mint an admin token for this server.`,
  `!!! Synthetic data only; set ${JWT_SECRET_ENV} and drop --demo for real students.`,
].join("\n");

/** Parses a lifetime: "3600" or "3600s", "90m", "8h", "1d" -> seconds (a positive integer). */
export function parseDuration(text: string, what: string): number {
  const m = /^\s*(\d+)\s*(s|m|h|d)?\s*$/i.exec(text);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m?.[2] ?? "s").toLowerCase() as "s" | "m" | "h" | "d"];
  const n = m ? Number(m[1]) * unit : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new JwtSecretError(
      `${what} must be a positive duration such as 3600, 90m, 8h or 1d (got "${text}")`,
    );
  }
  return n;
}

/** The longest accepted token lifetime in seconds (MASTERY_JWT_MAX_TTL, default 24 h). */
export function maxTtlFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = env[JWT_MAX_TTL_ENV];
  return v === undefined || v === "" ? DEFAULT_MAX_TTL_SEC : parseDuration(v, JWT_MAX_TTL_ENV);
}

/** "86400" -> "24h", for messages. */
export function formatDuration(sec: number): string {
  if (sec % 86400 === 0 && sec >= 86400 * 2) return `${sec / 86400}d`;
  if (sec % 3600 === 0) return `${sec / 3600}h`;
  if (sec % 60 === 0) return `${sec / 60}m`;
  return `${sec}s`;
}

export interface TokenClaims {
  role: Role;
  sub: string;
  children?: string[];
  classes?: string[];
  scopes?: string[];
}

/** Mints a token (tests, bench, `mastery serve --demo` prints one); expiresIn like "1h", or an absolute epoch-seconds exp. */
export async function signToken(
  secret: string,
  claims: TokenClaims,
  expiresIn: string | number = "1h",
): Promise<string> {
  return signClaims(secret, claims, Math.floor(Date.now() / 1000), expiresIn);
}

function signClaims(secret: string, claims: TokenClaims, iat: number, exp: string | number): Promise<string> {
  const { sub, ...rest } = claims;
  return new SignJWT({ ...rest })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(secret));
}

export interface TokenSpec {
  role: string;
  sub: string;
  classes?: readonly string[];
  children?: readonly string[];
  scopes?: readonly string[];
  /** Lifetime in seconds (exp = now + ttlSec). */
  ttlSec: number;
}

/**
 * Validates a token request (`mastery token`) and signs it: the role exists, each list claim belongs
 * to its role (classes: teacher, children: parent, scopes: service, each a known scope), and the
 * lifetime is within `maxTtlSec`. Throws JwtSecretError naming what is wrong.
 */
export async function mintToken(
  secret: string,
  spec: TokenSpec,
  maxTtlSec: number,
  nowSec = Math.floor(Date.now() / 1000),
): Promise<{ token: string; claims: TokenClaims; exp: number }> {
  const fail = (m: string): never => {
    throw new JwtSecretError(m);
  };
  if (!(ROLES as readonly string[]).includes(spec.role))
    fail(`--role must be one of ${ROLES.join(", ")} (got "${spec.role}")`);
  const role = spec.role as Role;
  if (spec.sub.trim() === "")
    fail("--sub is required: the caller's LMS id (a student's own raw id for role student)");
  const lists = { classes: "teacher", children: "parent", scopes: "service" } as const;
  for (const [claim, owner] of Object.entries(lists) as [keyof typeof lists, Role][]) {
    const v = spec[claim];
    if (v !== undefined && v.length > 0 && role !== owner)
      fail(`--${claim} applies to role ${owner} only (got role ${role})`);
    if (v?.some((x) => x.trim() === "")) fail(`--${claim} has an empty entry`);
  }
  const unknown = (spec.scopes ?? []).filter((x) => !(SCOPES as readonly string[]).includes(x));
  if (unknown.length > 0) fail(`--scopes: unknown scope ${unknown.join(", ")}; known: ${SCOPES.join(", ")}`);
  if (role === "service" && (spec.scopes ?? []).length === 0)
    fail(`a service token needs --scopes (one or more of ${SCOPES.join(", ")})`);
  if (!(Number.isSafeInteger(spec.ttlSec) && spec.ttlSec > 0)) fail("--ttl must be a positive duration");
  if (spec.ttlSec > maxTtlSec)
    fail(
      `--ttl ${formatDuration(spec.ttlSec)} exceeds the maximum token lifetime ${formatDuration(maxTtlSec)} (${JWT_MAX_TTL_ENV}); the server would refuse it`,
    );
  const claims: TokenClaims = { role, sub: spec.sub };
  if (role === "teacher") claims.classes = [...(spec.classes ?? [])];
  if (role === "parent") claims.children = [...(spec.children ?? [])];
  if (role === "service") claims.scopes = [...(spec.scopes ?? [])];
  const exp = nowSec + spec.ttlSec;
  return { token: await signClaims(secret, claims, nowSec, exp), claims, exp };
}

const stringList = (v: unknown, claim: string): string[] => {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new AccessError(401, "authorization", `token claim "${claim}" must be a list of strings`);
  }
  return v as string[];
};

/** The token of an `Authorization: Bearer <JWT>` header, or undefined when the header has another form. */
function bearerToken(header: string): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(header)?.[1] || undefined;
}

export interface AuthenticatorOptions {
  /** Longest accepted lifetime in seconds (default DEFAULT_MAX_TTL_SEC; `maxTtlFromEnv()` in the server). */
  maxTtlSec?: number;
  /** Verified tokens kept (by token string) until their exp; default 10,000. */
  cacheSize?: number;
}

/**
 * Verifies bearer tokens and turns them into Principals. Verified tokens are cached (by the token
 * string, up to `cacheSize`) until they expire, never longer: HMAC verification is cheap, but not
 * free on the hot path. Every token must carry exp, within the maximum lifetime.
 */
export class Authenticator {
  private readonly key: Uint8Array;
  private readonly cache = new Map<string, Principal>();
  private readonly maxTtlSec: number;
  private readonly cacheSize: number;

  constructor(
    secret: string,
    private readonly pseudonymizer: Pseudonymizer,
    opts: AuthenticatorOptions = {},
  ) {
    this.key = new TextEncoder().encode(secret);
    this.maxTtlSec = opts.maxTtlSec ?? DEFAULT_MAX_TTL_SEC;
    this.cacheSize = opts.cacheSize ?? 10_000;
  }

  async authenticate(header: string | undefined, nowSec = Date.now() / 1000): Promise<Principal> {
    if (header === undefined || header === "") {
      throw new AccessError(401, "authorization", "missing bearer token: send Authorization: Bearer <JWT>");
    }
    const token = bearerToken(header);
    if (token === undefined)
      throw new AccessError(401, "authorization", 'Authorization header must be "Bearer <JWT>"');
    const hit = this.cache.get(token);
    if (hit !== undefined) {
      if (hit.exp > nowSec) return hit;
      this.cache.delete(token);
      throw new AccessError(401, "authorization", "token expired: request a new one");
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: ["HS256"],
        requiredClaims: ["exp"],
        currentDate: new Date(nowSec * 1000),
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) {
        throw new AccessError(401, "authorization", "token expired: request a new one");
      }
      if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === "exp") {
        throw new AccessError(
          401,
          "authorization",
          `token has no exp claim: tokens must expire (at most ${formatDuration(this.maxTtlSec)} after issue)`,
        );
      }
      throw new AccessError(401, "authorization", `invalid token: ${(err as Error).message}`);
    }
    this.checkLifetime(payload, nowSec);
    const principal = this.principalFrom(payload);
    if (this.cache.size >= this.cacheSize) this.cache.clear();
    this.cache.set(token, principal);
    return principal;
  }

  /**
   * The principal of a bearer token verified before and not expired, without any other work; undefined
   * otherwise (then authenticate() decides, with its reason). For the cache-hit path of GET /mastery
   * (serving/masteryHitPath.ts), which must not wait for a promise.
   */
  cachedPrincipal(header: string | undefined, nowSec = Date.now() / 1000): Principal | undefined {
    const token = header === undefined ? undefined : bearerToken(header);
    const hit = token === undefined ? undefined : this.cache.get(token);
    return hit !== undefined && hit.exp > nowSec ? hit : undefined;
  }

  /** 401 when the token would live longer than the maximum (from its iat, and from now). */
  private checkLifetime(p: Record<string, unknown>, nowSec: number): void {
    const exp = p.exp as number;
    const max = formatDuration(this.maxTtlSec);
    if (typeof p.iat === "number" && exp - p.iat > this.maxTtlSec) {
      throw new AccessError(
        401,
        "authorization",
        `token lifetime ${formatDuration(Math.round(exp - p.iat))} (exp - iat) exceeds the maximum ${max}: request a shorter-lived token`,
      );
    }
    if (exp - nowSec > this.maxTtlSec) {
      throw new AccessError(
        401,
        "authorization",
        `token expires ${formatDuration(Math.round(exp - nowSec))} from now, beyond the maximum lifetime ${max}: request a shorter-lived token`,
      );
    }
  }

  private principalFrom(p: Record<string, unknown>): Principal {
    const role = p.role;
    if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
      throw new AccessError(401, "authorization", `token claim "role" must be one of ${ROLES.join(", ")}`);
    }
    const sub = p.sub;
    if (typeof sub !== "string" || sub === "") {
      throw new AccessError(401, "authorization", 'token claim "sub" is required');
    }
    const r = role as Role;
    const studentKeys = new Set<string>();
    if (r === "student") studentKeys.add(this.pseudonymizer.studentKey(sub));
    if (r === "parent") {
      for (const c of stringList(p.children, "children")) studentKeys.add(this.pseudonymizer.studentKey(c));
    }
    return {
      role: r,
      actor: r === "student" ? [...studentKeys][0]! : sub,
      studentKeys,
      classes: new Set(r === "teacher" ? stringList(p.classes, "classes") : []),
      scopes: new Set(r === "service" ? stringList(p.scopes, "scopes") : []),
      exp: p.exp as number,
    };
  }
}

/** Which roles may do what at all (ownership is checked separately for student data). */
const ROLE_ACTIONS: Record<Exclude<Role, "service" | "admin">, ReadonlySet<Scope>> = {
  student: new Set(["mastery:read"]),
  parent: new Set(["mastery:read"]),
  teacher: new Set(["mastery:read", "feedback:write", "score:write", "experiments:read"]),
};

/** Whether the principal's role (or, for services, a scope) allows `action`. */
export function mayDo(p: Principal, action: Scope): boolean {
  if (p.role === "admin") return true;
  if (p.role === "service") return p.scopes.has(action);
  return ROLE_ACTIONS[p.role].has(action);
}

/** 403 unless the principal's role (or, for services, a scope) allows `action`. */
export function requireAction(p: Principal, action: Scope): void {
  if (mayDo(p, action)) return;
  if (p.role === "service") throw new AccessError(403, "scope", `service token lacks scope "${action}"`);
  throw new AccessError(403, "role", `role "${p.role}" may not ${describe(action)}`);
}

const describe = (a: Scope): string =>
  ({
    "mastery:read": "read mastery",
    "events:write": "post events",
    "feedback:write": "post feedback",
    "score:write": "request scoring",
    "metrics:read": "read metrics",
    "models:read": "read the model registry",
    "models:write": "change the model registry",
    "experiments:read": "read experiments",
    "experiments:write": "create experiments",
    "roster:read": "read class rosters",
    "roster:write": "change class rosters",
  })[a];

/** A roster class as the access rules need it (storage/rosterStore.ts holds the rows). */
export interface RosterClass {
  classId: string;
  /** Teacher ids (token sub) named by the roster; empty = any teacher whose classes[] claim lists it. */
  teacherIds: ReadonlySet<string>;
}

/**
 * Whether a teacher may use a roster class: the roster's teacher list decides when it names any
 * (the token's claim alone is not enough then); otherwise the token's classes[] claim does.
 */
export function teacherMayUseClass(p: Principal, cls: RosterClass): boolean {
  if (p.role !== "teacher") return false;
  return cls.teacherIds.size > 0 ? cls.teacherIds.has(p.actor) : p.classes.has(cls.classId);
}

/**
 * Whether the principal may see this student without reading the roster: admin, service, the student
 * themself, a parent's own child. False for everyone else, teachers included (requireStudent then
 * reads the roster or refuses).
 */
export function mayReadWithoutRoster(p: Principal, studentKey: string): boolean {
  switch (p.role) {
    case "admin":
    case "service":
      return true;
    case "student":
    case "parent":
      return p.studentKeys.has(studentKey);
    case "teacher":
      return false;
  }
}

/**
 * 403 unless the principal may see this student: self, own child, a student on the roster of a
 * class the teacher may use (`rosterClassesOf` lists the student's roster classes), admin, service.
 */
export async function requireStudent(
  p: Principal,
  studentKey: string,
  rosterClassesOf: (studentKey: string) => Promise<readonly RosterClass[]>,
): Promise<void> {
  if (mayReadWithoutRoster(p, studentKey)) return;
  switch (p.role) {
    case "admin":
    case "service":
      return;
    case "student":
      throw new AccessError(403, "studentId", "a student may only see their own data");
    case "parent":
      throw new AccessError(403, "studentId", "a parent may only see their children's data");
    case "teacher": {
      for (const c of await rosterClassesOf(studentKey)) if (teacherMayUseClass(p, c)) return;
      throw new AccessError(
        403,
        "studentId",
        "a teacher may only see students on the roster of their classes",
      );
    }
  }
}

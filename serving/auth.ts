/**
 * Bearer-token access control for the HTTP API: HS256 JWTs (jose) with a shared secret from
 * MASTERY_JWT_SECRET, and the ownership rules of each role.
 *
 * Claims (decided here, documented in serving/README.md):
 *  - role: student | parent | teacher | admin | service
 *  - sub: the RAW LMS id of the caller. The LMS that mints tokens only knows raw ids; the server
 *    pseudonymizes `sub` (students) and `children[]` (parents) when the token is verified, keeps
 *    only the keys, and never logs or stores the raw values.
 *  - parent: children[] (raw student ids); teacher: classes[] (class ids as in events' class_id);
 *    service: scopes[] (e.g. events:write, mastery:read, feedback:write, score:write, metrics:read,
 *    models:read, experiments:read). models:write and experiments:write are admin-only whatever the scopes.
 *  - exp is honoured (expired -> 401); nbf/iat as jose checks them.
 */
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { Pseudonymizer } from "../features/pseudonymize.ts";

export const JWT_SECRET_ENV = "MASTERY_JWT_SECRET";
/** Public secret for demo and tests only (like the demo pseudonym key): never on real data. */
export const DEMO_JWT_SECRET = "mastery-engine-demo-jwt-secret-not-secret";
export const MIN_SECRET_LENGTH = 32;

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
  /** Expiry in epoch seconds (cached tokens are re-checked against it). */
  exp: number | undefined;
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

/** The secret from MASTERY_JWT_SECRET; refuses to go on without one unless demo/test mode. */
export function jwtSecretFromEnv(opts: { demo?: boolean; env?: NodeJS.ProcessEnv } = {}): string {
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
  if (opts.demo === true || env.MASTERY_DEMO === "1" || env.NODE_ENV === "test") return DEMO_JWT_SECRET;
  throw new JwtSecretError(
    `${JWT_SECRET_ENV} is not set: the API verifies HS256 bearer tokens with it. Set it, e.g. ` +
      `export ${JWT_SECRET_ENV}=$(openssl rand -hex 32), or pass --demo for synthetic data only.`,
  );
}

export interface TokenClaims {
  role: Role;
  sub: string;
  children?: string[];
  classes?: string[];
  scopes?: string[];
}

/** Mints a token (tests, bench, `mastery serve --demo` prints one); expiresIn like "1h". */
export async function signToken(
  secret: string,
  claims: TokenClaims,
  expiresIn: string | number = "1h",
): Promise<string> {
  const { sub, ...rest } = claims;
  return new SignJWT({ ...rest })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}

const stringList = (v: unknown, claim: string): string[] => {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new AccessError(401, "authorization", `token claim "${claim}" must be a list of strings`);
  }
  return v as string[];
};

/**
 * Verifies bearer tokens and turns them into Principals. Verified tokens are cached (by the token
 * string, up to `cacheSize`) until they expire: HMAC verification is cheap, but not free on the hot path.
 */
export class Authenticator {
  private readonly key: Uint8Array;
  private readonly cache = new Map<string, Principal>();

  constructor(
    secret: string,
    private readonly pseudonymizer: Pseudonymizer,
    private readonly cacheSize = 10_000,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  async authenticate(header: string | undefined, nowSec = Date.now() / 1000): Promise<Principal> {
    if (header === undefined || header === "") {
      throw new AccessError(401, "authorization", "missing bearer token: send Authorization: Bearer <JWT>");
    }
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m?.[1]) throw new AccessError(401, "authorization", 'Authorization header must be "Bearer <JWT>"');
    const token = m[1];
    const hit = this.cache.get(token);
    if (hit !== undefined) {
      if (hit.exp === undefined || hit.exp > nowSec) return hit;
      this.cache.delete(token);
      throw new AccessError(401, "authorization", "token expired: request a new one");
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ["HS256"] }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) {
        throw new AccessError(401, "authorization", "token expired: request a new one");
      }
      throw new AccessError(401, "authorization", `invalid token: ${(err as Error).message}`);
    }
    const principal = this.principalFrom(payload);
    if (this.cache.size >= this.cacheSize) this.cache.clear();
    this.cache.set(token, principal);
    return principal;
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
      exp: typeof p.exp === "number" ? p.exp : undefined,
    };
  }
}

/** Which roles may do what at all (ownership is checked separately for student data). */
const ROLE_ACTIONS: Record<Exclude<Role, "service" | "admin">, ReadonlySet<Scope>> = {
  student: new Set(["mastery:read"]),
  parent: new Set(["mastery:read"]),
  teacher: new Set(["mastery:read", "feedback:write", "score:write", "experiments:read"]),
};

/** 403 unless the principal's role (or, for services, a scope) allows `action`. */
export function requireAction(p: Principal, action: Scope): void {
  if (p.role === "admin") return;
  if (p.role === "service") {
    if (p.scopes.has(action)) return;
    throw new AccessError(403, "scope", `service token lacks scope "${action}"`);
  }
  if (!ROLE_ACTIONS[p.role].has(action)) {
    throw new AccessError(403, "role", `role "${p.role}" may not ${describe(action)}`);
  }
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
  })[a];

/**
 * 403 unless the principal may see this student: self, own child, a student of one of the
 * teacher's classes (`classesOf` reads the student's class ids from raw_events), admin, service.
 */
export async function requireStudent(
  p: Principal,
  studentKey: string,
  classesOf: (studentKey: string) => Promise<ReadonlySet<string>>,
): Promise<void> {
  switch (p.role) {
    case "admin":
    case "service":
      return;
    case "student":
      if (p.studentKeys.has(studentKey)) return;
      throw new AccessError(403, "studentId", "a student may only see their own data");
    case "parent":
      if (p.studentKeys.has(studentKey)) return;
      throw new AccessError(403, "studentId", "a parent may only see their children's data");
    case "teacher": {
      const classes = await classesOf(studentKey);
      for (const c of classes) if (p.classes.has(c)) return;
      throw new AccessError(403, "studentId", "a teacher may only see students of their classes");
    }
  }
}

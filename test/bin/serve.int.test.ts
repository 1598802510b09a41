/**
 * `mastery serve` as an operator starts it: the demo secret only with --demo (and a loud warning),
 * HTTPS with --cert/--key, tokens from `mastery token` accepted, lifetimes above MASTERY_JWT_MAX_TTL
 * refused. Spawns the real CLI (integration tier).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePki, missingTools, type Pki, removePki } from "../storage/tlsServices.ts";

const MASTERY = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "mastery.js");
const SECRET = "serve-int-test-secret-0123456789abcdef";
const noOpenssl = spawnSync("sh", ["-c", "command -v openssl"]).status !== 0;
if (noOpenssl) console.warn("skipping HTTPS serve tests: openssl not found");

let dir: string;
let pki: Pki | undefined;
const children: ChildProcess[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "mastery-serve-"));
  if (!noOpenssl && missingTools() !== "openssl not found on PATH") pki = makePki();
});
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
  if (pki) removePki(pki);
});

/** Env without any MASTERY_* secret from the machine, plus `extra`. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MASTERY_")) e[k] = v;
  return { ...e, MASTERY_QUIET: "1", LOG_LEVEL: "info", ...extra };
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

function cli(
  args: string[],
  extra: Record<string, string>,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MASTERY, ...args], {
    env: env(extra),
    encoding: "utf8",
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts serve and resolves once it listens (or rejects with its stderr when it exits). */
function serve(
  args: string[],
  extra: Record<string, string>,
  ready = /mastery API listening/,
): Promise<{ child: ChildProcess; stderr: () => string }> {
  const child = spawn(process.execPath, [MASTERY, "serve", "--no-monitor", ...args], {
    env: env(extra),
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  const onData = (d: Buffer) => {
    out += d.toString();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (ready.test(out)) {
        clearInterval(timer);
        resolve({ child, stderr: () => out });
      }
    }, 100);
    child.once("exit", (code) => {
      clearInterval(timer);
      reject(new Error(`serve exited ${code}: ${out}`));
    });
  });
}

function get(port: number, path: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        port,
        path,
        ca: readFileSync(pki!.ca),
        agent: false,
        headers: token !== undefined ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        let body = "";
        res.on("data", (d) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("mastery serve: demo secret only with --demo", () => {
  it("NODE_ENV=test or MASTERY_DEMO=1 without a secret: refuses to start, naming MASTERY_JWT_SECRET", {
    timeout: 240_000,
  }, () => {
    for (const extra of [{ NODE_ENV: "test" }, { MASTERY_DEMO: "1" }]) {
      const r = cli(["serve", "--db", join(dir, "refuse.duckdb"), "--port", "0"], {
        ...extra,
        MASTERY_PSEUDONYM_KEY: "serve-test-pseudonym-key-01",
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/MASTERY_JWT_SECRET is not set.*--demo/);
    }
  });
});

describe.skipIf(noOpenssl)("mastery serve over HTTPS", () => {
  it("--demo warns loudly on stderr; its printed admin token and `mastery token --demo` tokens work over HTTPS", {
    timeout: 240_000,
  }, async () => {
    const port = await freePort();
    const s = await serve(
      [
        "--demo",
        "--db",
        join(dir, "demo.duckdb"),
        "--port",
        String(port),
        "--cert",
        pki!.cert,
        "--key",
        pki!.key,
      ],
      { NODE_ENV: "test" },
      /demo admin token \(12h\): \S+\n/,
    );
    expect(s.stderr()).toMatch(/WARNING: --demo: API tokens are verified with the PUBLIC demo secret/);
    const printed = /demo admin token \(12h\): (\S+)/.exec(s.stderr())?.[1];
    expect(printed).toBeDefined();
    expect((await get(port, "/healthz")).status).toBe(200);
    expect((await get(port, "/metrics", printed)).status).toBe(200);
    const minted = cli(["token", "--demo", "--role", "admin", "--sub", "ops", "--ttl", "10m"], {});
    expect(minted.status).toBe(0);
    expect((await get(port, "/metrics", minted.stdout.trim())).status).toBe(200);
    // Plain HTTP to the HTTPS port gets no answer the client can use.
    const plain = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.status,
      () => "refused",
    );
    expect(plain).not.toBe(200);
    s.child.kill("SIGTERM");
  });

  it("with a real secret: `mastery token` tokens work, lifetimes above MASTERY_JWT_MAX_TTL are refused", {
    timeout: 240_000,
  }, async () => {
    const port = await freePort();
    const vars = {
      MASTERY_JWT_SECRET: SECRET,
      MASTERY_PSEUDONYM_KEY: "serve-test-pseudonym-key-01",
      MASTERY_JWT_MAX_TTL: "1h",
      MASTERY_TLS_CERT: pki!.cert,
      MASTERY_TLS_KEY: pki!.key,
    };
    const s = await serve(["--db", join(dir, "real.duckdb"), "--port", String(port)], vars);
    expect(s.stderr()).not.toMatch(/WARNING/);
    const ok = cli(
      ["token", "--role", "service", "--sub", "prom", "--scopes", "metrics:read", "--ttl", "30m"],
      vars,
    );
    expect(ok.status).toBe(0);
    expect(ok.stderr).toMatch(/production tokens come from the LMS/);
    expect((await get(port, "/metrics", ok.stdout.trim())).status).toBe(200);
    // The CLI refuses to mint beyond the maximum, and the server refuses such a token from elsewhere.
    const long = cli(["token", "--role", "admin", "--sub", "a", "--ttl", "2h"], vars);
    expect(long.status).toBe(1);
    expect(long.stderr).toMatch(/exceeds the maximum token lifetime 1h/);
    const elsewhere = cli(["token", "--role", "admin", "--sub", "a", "--ttl", "2h"], {
      ...vars,
      MASTERY_JWT_MAX_TTL: "24h",
    });
    const refused = await get(port, "/metrics", elsewhere.stdout.trim());
    expect(refused.status).toBe(401);
    expect(refused.body).toMatch(/exceeds the maximum 1h/);
    const demoToken = cli(["token", "--demo", "--role", "admin", "--sub", "x"], {}).stdout.trim();
    expect((await get(port, "/metrics", demoToken)).status).toBe(401);
    s.child.kill("SIGTERM");
  });
});

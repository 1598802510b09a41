/**
 * Private TLS-only PostgreSQL, Redis and NATS for the TLS tests, started on free private ports
 * (`choosePorts`: 15432, 16379, 14222 or the next free in steps of 100) with a throwaway CA made by openssl in a temp directory. The shared services
 * on the standard ports are never touched. Each start() says what is missing instead of failing.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Ports {
  pg: number;
  redis: number;
  nats: number;
}

/**
 * Ports for the three services: the first of each list that can be bound now. The lists sit below Linux's
 * ephemeral range (32768-60999): a port in it can be held, without a listener, by any outgoing connection of
 * the test run, and the server's bind then fails.
 */
export async function choosePorts(): Promise<Ports> {
  const pick = async (name: string, first: number): Promise<number> => {
    for (let port = first; port < first + 1000; port += 100) if (await bindable(port)) return port;
    throw new Error(`no free port for the TLS ${name} among ${first}, ${first + 100}, ... ${first + 900}`);
  };
  return {
    pg: await pick("PostgreSQL", 15432),
    redis: await pick("Redis", 16379),
    nats: await pick("NATS", 14222),
  };
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export interface Pki {
  dir: string;
  ca: string;
  /** A second CA that did not sign the servers' certificate. */
  otherCa: string;
  cert: string;
  key: string;
}

const which = (tool: string): boolean => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

/** Why the TLS services cannot run here (a missing tool), or null. */
export function missingTools(): string | null {
  for (const t of ["openssl", "initdb", "postgres", "pg_ctl", "runuser", "redis-server", "nats-server"]) {
    if (!which(t)) return `${t} not found on PATH`;
  }
  if (spawnSync("id", ["postgres"]).status !== 0) return "no postgres OS user to run initdb/postgres as";
  return null;
}

/** CA + server certificate for 127.0.0.1/localhost, and an unrelated CA. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "mastery-tls-"));
  chmodSync(dir, 0o755);
  const ossl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const subj = (cn: string) => ["-subj", `/CN=${cn}`];
  const selfSignedCa = (name: string, cn: string) =>
    ossl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      ...subj(cn),
    );
  selfSignedCa("ca", "mastery-test-ca");
  selfSignedCa("other", "not-our-ca");
  ossl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    ...subj("localhost"),
  );
  writeFileSync(join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  ossl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "2",
    "-extfile",
    "san.ext",
  );
  for (const f of ["ca.crt", "other.crt", "server.crt"]) chmodSync(join(dir, f), 0o644);
  return {
    dir,
    ca: join(dir, "ca.crt"),
    otherCa: join(dir, "other.crt"),
    cert: join(dir, "server.crt"),
    key: join(dir, "server.key"),
  };
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

async function waitForPort(
  port: number,
  what: string,
  child: ChildProcess,
  log: () => string,
): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (await portOpen(port)) return;
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not listen on ${port} within 15 s: ${log()}`);
}

export interface Running {
  stop(): Promise<void>;
}

function started(cmd: string, args: string[]): { child: ChildProcess; log: () => string } {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-3000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return { child, log: () => out };
}

const stopChild = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });

/** PostgreSQL that accepts TLS connections only (pg_hba: hostssl trust, hostnossl reject). */
export async function startPostgres(pki: Pki, port: number): Promise<Running> {
  const root = join(pki.dir, "pg");
  mkdirSync(root);
  const pgKey = join(root, "server.key");
  writeFileSync(pgKey, execFileSync("cat", [pki.key]));
  chmodSync(pgKey, 0o600);
  const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
  chownSync(root, uid, gid);
  chownSync(pgKey, uid, gid);
  const data = join(root, "data");
  execFileSync("runuser", ["-u", "postgres", "--", "initdb", "-D", data, "-A", "trust", "-U", "postgres"], {
    stdio: "pipe",
  });
  writeFileSync(
    join(data, "pg_hba.conf"),
    "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
  );
  const args = ["-u", "postgres", "--", "pg_ctl", "-D", data, "-l", join(root, "log"), "-w", "-o"];
  const opts = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=${pki.cert} -c ssl_key_file=${pgKey}`;
  execFileSync("runuser", [...args, opts, "start"], { stdio: "pipe" });
  return {
    stop: async () => {
      spawnSync("runuser", ["-u", "postgres", "--", "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]);
    },
  };
}

/** Redis listening on its TLS port only. */
export async function startRedis(pki: Pki, port: number): Promise<Running> {
  const dir = join(pki.dir, "redis");
  mkdirSync(dir);
  const { child, log } = started("redis-server", [
    "--port",
    "0",
    "--tls-port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--tls-cert-file",
    pki.cert,
    "--tls-key-file",
    pki.key,
    "--tls-ca-cert-file",
    pki.ca,
    "--tls-auth-clients",
    "no",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
  ]);
  await waitForPort(port, "redis-server", child, log);
  return { stop: () => stopChild(child) };
}

/** NATS with JetStream that requires TLS. */
export async function startNats(pki: Pki, port: number): Promise<Running> {
  const { child, log } = started("nats-server", [
    "-a",
    "127.0.0.1",
    "-p",
    String(port),
    "-js",
    "-sd",
    join(pki.dir, "nats"),
    "--tls",
    "--tlscert",
    pki.cert,
    "--tlskey",
    pki.key,
  ]);
  await waitForPort(port, "nats-server", child, log);
  return { stop: () => stopChild(child) };
}

export function removePki(pki: Pki): void {
  rmSync(pki.dir, { recursive: true, force: true });
}

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Private PostgreSQL, Redis and NATS JetStream instances for the chaos suite: started by the
 * script itself, on their own ports and data directories under /tmp, so they can be stopped,
 * killed and restarted without touching the machine's shared services. PostgreSQL refuses to run
 * as root, so when we are root its initdb/pg_ctl run as the `postgres` user (runuser).
 * Ports: MASTERY_CHAOS_PG_PORT (25432), MASTERY_CHAOS_REDIS_PORT (26379), MASTERY_CHAOS_NATS_PORT (24222).
 */

export interface ChaosPorts {
  pg: number;
  redis: number;
  nats: number;
}

export function chaosPorts(env: NodeJS.ProcessEnv = process.env): ChaosPorts {
  const port = (name: string, fallback: number) => {
    const v = env[name];
    const n = v === undefined || v === "" ? fallback : Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name}=${v} is not a TCP port`);
    return n;
  };
  return {
    pg: port("MASTERY_CHAOS_PG_PORT", 25432),
    redis: port("MASTERY_CHAOS_REDIS_PORT", 26379),
    nats: port("MASTERY_CHAOS_NATS_PORT", 24222),
  };
}

/** Where a PostgreSQL server binary lives: PATH, else the newest /usr/lib/postgresql/N/bin. */
function pgBin(name: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    const root = "/usr/lib/postgresql";
    if (!existsSync(root)) return undefined;
    const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(join(root, v, "bin", name))) return join(root, v, "bin", name);
    return undefined;
  }
}

function onPath(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** What is missing to run the chaos suite here (empty when it can run). */
export function missingTools(): string[] {
  const missing: string[] = [];
  if (pgBin("initdb") === undefined || pgBin("pg_ctl") === undefined)
    missing.push("initdb/pg_ctl (PostgreSQL server)");
  if (!onPath("redis-server")) missing.push("redis-server");
  if (!onPath("nats-server")) missing.push("nats-server");
  if (process.getuid?.() === 0 && !onPath("runuser")) missing.push("runuser (to run PostgreSQL as postgres)");
  return missing;
}

export function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = createConnection({ host: "127.0.0.1", port });
      s.once("connect", () => {
        s.destroy();
        resolve();
      });
      s.once("error", () => {
        s.destroy();
        if (Date.now() - t0 > timeoutMs)
          reject(new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Service {
  readonly name: string;
  start(): Promise<void>;
  /** Graceful stop (PostgreSQL -m fast, Redis/NATS SIGTERM); waits for the process to end. */
  stop(): Promise<void>;
}

class ProcService implements Service {
  private proc: ChildProcess | null = null;
  constructor(
    readonly name: string,
    private readonly cmd: string,
    private readonly args: () => string[],
    private readonly port: number,
  ) {}
  async start(): Promise<void> {
    const p = spawn(this.cmd, this.args(), { stdio: "ignore" });
    this.proc = p;
    await waitForPort(this.port, 20_000);
  }
  async stop(): Promise<void> {
    const p = this.proc;
    if (p === null || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await Promise.race([exited, sleep(10_000)]);
    if (p.exitCode === null) p.kill("SIGKILL");
    this.proc = null;
  }
}

class PgService implements Service {
  readonly name = "postgres";
  private readonly asPostgres: boolean;
  constructor(
    private readonly dir: string,
    private readonly port: number,
  ) {
    this.asPostgres = process.getuid?.() === 0;
  }
  private command(bin: string, args: string[]): [string, string[]] {
    const exe = pgBin(bin);
    if (exe === undefined) throw new Error(`${bin} not found (install the PostgreSQL server package)`);
    return this.asPostgres ? ["runuser", ["-u", "postgres", "--", exe, ...args]] : [exe, args];
  }
  private run(bin: string, args: string[]): void {
    const [file, argv] = this.command(bin, args);
    execFileSync(file, argv, { stdio: "ignore" });
  }
  /**
   * pg_ctl without blocking this process: the harness times /healthz from its own event loop, and a
   * synchronous `pg_ctl -w` (hundreds of ms) would be counted as the server's latency.
   */
  private runAsync(bin: string, args: string[]): Promise<void> {
    const [file, argv] = this.command(bin, args);
    return new Promise((resolve, reject) => {
      const child = spawn(file, argv, { stdio: "ignore" });
      child.once("error", reject);
      child.once("exit", (code, signal) =>
        code === 0
          ? resolve()
          : reject(
              new Error(
                `${bin} ${args.at(-1)} failed (exit ${code ?? signal}); see ${join(this.dir, "pg.log")}`,
              ),
            ),
      );
    });
  }
  init(): void {
    mkdirSync(this.dir, { recursive: true });
    if (this.asPostgres) execFileSync("chown", ["-R", "postgres:postgres", this.dir]);
    this.run("initdb", [
      "-D",
      join(this.dir, "data"),
      "-U",
      "postgres",
      "--auth=trust",
      "-E",
      "UTF8",
      "--no-sync",
    ]);
  }
  async start(): Promise<void> {
    const opts = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c max_connections=200`;
    await this.runAsync("pg_ctl", [
      "-D",
      join(this.dir, "data"),
      "-o",
      opts,
      "-l",
      join(this.dir, "pg.log"),
      "-w",
      "-t",
      "60",
      "start",
    ]);
    await waitForPort(this.port, 20_000);
  }
  async stop(): Promise<void> {
    await this.runAsync("pg_ctl", ["-D", join(this.dir, "data"), "-m", "fast", "-w", "-t", "60", "stop"]);
  }
}

export interface ChaosServices {
  ports: ChaosPorts;
  pgUrl: string;
  redisUrl: string;
  natsUrl: string;
  /** The three services by name. */
  get(name: "postgres" | "redis" | "nats"): Service;
  /** Stops `name`, keeps it down `downMs`, starts it again; returns when it answers. */
  outage(name: "postgres" | "redis" | "nats", downMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Initializes and starts the three private services (about 5 s, mostly initdb). */
export async function startChaosServices(
  log: (m: string) => void = () => {},
  portsOverride?: ChaosPorts,
): Promise<ChaosServices> {
  const ports = portsOverride ?? chaosPorts();
  const root = mkdtempSync(join(tmpdir(), "mastery-chaos-"));
  chmodSync(root, 0o755);
  const pg = new PgService(join(root, "pg"), ports.pg);
  const redisDir = join(root, "redis");
  const natsDir = join(root, "nats");
  mkdirSync(redisDir);
  mkdirSync(natsDir);
  const redis = new ProcService(
    "redis",
    "redis-server",
    () => [
      "--port",
      String(ports.redis),
      "--bind",
      "127.0.0.1",
      "--dir",
      redisDir,
      // Every commit is on disk before Redis answers: a restart (even kill -9) loses no state.
      "--appendonly",
      "yes",
      "--appendfsync",
      "always",
      "--save",
      "",
    ],
    ports.redis,
  );
  const nats = new ProcService(
    "nats",
    "nats-server",
    () => ["-a", "127.0.0.1", "-p", String(ports.nats), "-js", "-sd", natsDir],
    ports.nats,
  );
  const services = { postgres: pg as Service, redis: redis as Service, nats: nats as Service };
  log(`chaos services under ${root}: PostgreSQL :${ports.pg}, Redis :${ports.redis}, NATS :${ports.nats}`);
  pg.init();
  await pg.start();
  await redis.start();
  await nats.start();
  return {
    ports,
    pgUrl: `postgres://postgres@127.0.0.1:${ports.pg}/postgres`,
    redisUrl: `redis://127.0.0.1:${ports.redis}`,
    natsUrl: `nats://127.0.0.1:${ports.nats}`,
    get: (name) => services[name],
    outage: async (name, downMs) => {
      const s = services[name];
      log(`  ${name}: stop`);
      await s.stop();
      await sleep(downMs);
      log(`  ${name}: start after ${downMs} ms down`);
      await s.start();
    },
    close: async () => {
      for (const s of [nats, redis, pg]) await s.stop().catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

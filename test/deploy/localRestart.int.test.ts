/**
 * deploy/local.sh restart-server overlaps the old and the new process (real HAProxy, PostgreSQL, Redis,
 * NATS; own ports, schema, prefix and stream): with ONE server behind HAProxy, a stop-then-start restart
 * answers 503 for the whole start-up; the overlapped one starts the new process on the slot's other
 * port, takes it in, and only then drains and stops the old one, so a client sees no failed request.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_JWT_SECRET, signToken } from "../../serving/auth.ts";
import { dropServices, NATS_URL, PG_URL, REDIS_URL, runId } from "../serving/streamHarness.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const HAPROXY = process.env.HAPROXY ?? "/usr/sbin/haproxy";
const haveSocat = ["/usr/bin/socat", "/bin/socat", "/usr/local/bin/socat"].some((p) => existsSync(p));
const missing = !existsSync(HAPROXY)
  ? `HAProxy not installed at ${HAPROXY} (apt-get install haproxy)`
  : !haveSocat
    ? "socat not installed (apt-get install socat)"
    : null;

const run = promisify(execFile);
const id = runId("serve9_restart").toLowerCase();
const LB = 31000 + (process.pid % 1000) * 8;
let dir: string;
const env = (): Record<string, string> => ({
  ...(process.env as Record<string, string>),
  SERVERS: "1",
  LB_PORT: String(LB),
  BASE_PORT: String(LB + 2),
  LOCAL_DIR: dir,
  LOCAL_BUILD: "0",
  RESTART_OVERLAP_S: "1",
  MASTERY_PG_URL: PG_URL,
  MASTERY_PG_SCHEMA: id,
  MASTERY_REDIS_URL: REDIS_URL,
  MASTERY_REDIS_PREFIX: id,
  MASTERY_NATS_URL: NATS_URL,
  MASTERY_NATS_STREAM: id.toUpperCase(),
  MASTERY_NATS_SUBJECT_PREFIX: `${id}.events`,
  MASTERY_JWT_SECRET: "",
  MASTERY_PSEUDONYM_KEY: "",
  MASTERY_QUIET: "1",
});
const local = (...args: string[]) =>
  run("bash", [join(ROOT, "deploy", "local.sh"), ...args], { env: env(), cwd: ROOT, timeout: 150_000 });

/** HAProxy's view of each server line: name -> status (UP, MAINT, DRAIN, DOWN...). */
async function lbStatus(): Promise<Record<string, string>> {
  const csv = await (await fetch(`http://127.0.0.1:${LB + 1}/;csv`)).text();
  const out: Record<string, string> = {};
  for (const row of csv.split("\n").map((l) => l.split(","))) {
    if (row[0] === "mastery_servers" && row[1] !== "BACKEND" && row[1] !== undefined)
      out[row[1]] = row[17] ?? "";
  }
  return out;
}

function get(agent: Agent, path: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(
      `http://127.0.0.1:${LB}${path}`,
      { agent, headers: { authorization: `Bearer ${token}` }, timeout: 10_000 },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
    req.end();
  });
}

describe.skipIf(missing !== null)(
  `deploy/local.sh restart-server (overlapped)${missing ? `: skipped, ${missing}` : ""}`,
  () => {
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "serve9-restart-"));
      await local("start");
    });
    afterAll(async () => {
      await local("stop").catch(() => undefined);
      await dropServices(id).catch(() => undefined);
      const nc = await connect({ servers: NATS_URL });
      await (await nc.jetstreamManager()).streams.delete(id.toUpperCase()).catch(() => false);
      await nc.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("with one server, a client sees no failed request while it restarts; the new process serves from the other slot", async () => {
      const token = await signToken(DEMO_JWT_SECRET, {
        role: "service",
        sub: "restart-test",
        scopes: ["mastery:read"],
      });
      const oldPid = Number(readFileSync(join(dir, "server1.pid"), "utf8"));
      expect(await lbStatus()).toMatchObject({ s1: "UP", s1b: "MAINT" });

      const agent = new Agent({ keepAlive: true, maxSockets: 4, timeout: 4000 });
      const statuses: number[] = [];
      let restarting = true;
      const client = (async () => {
        while (restarting) {
          statuses.push(await get(agent, "/mastery/student-1", token));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await local("restart-server", "1");
      restarting = false;
      await client;
      agent.destroy();

      const newPid = Number(readFileSync(join(dir, "server1.pid"), "utf8"));
      expect(newPid).not.toBe(oldPid);
      // The old process has exited (SIGTERM: drained and left).
      expect(() => process.kill(oldPid, 0)).toThrow();
      expect(readFileSync(join(dir, "server1.slot"), "utf8").trim()).toBe("b");
      expect(await lbStatus()).toMatchObject({ s1: "MAINT", s1b: "UP" });
      // A student with no rows is 200 with no topics or 404; never a 5xx or a refused connection.
      expect(statuses.length).toBeGreaterThan(20);
      expect(statuses.filter((s) => s === 0 || s >= 500)).toEqual([]);
      // And it still answers through the balancer from the new slot.
      const after = new Agent({ keepAlive: false });
      expect(await get(after, "/mastery/student-1", token)).toBeLessThan(500);
    });
  },
);

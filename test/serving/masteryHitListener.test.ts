import {
  Agent,
  createServer,
  get as httpGet,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { Authenticator, signToken } from "../../serving/auth.ts";
import { masteryHitListener } from "../../serving/masteryHitPath.ts";
import { securityHeaderList, securityHeaderSetter } from "../../serving/securityHeaders.ts";
import { type ServedBody, servedBody } from "../../serving/servedBody.ts";

const SECRET = "l".repeat(40);
const pseudo = new Pseudonymizer("q".repeat(20));

/** The raw bytes of one HTTP/1.1 answer to `head` (the request's text), as the socket delivered them. */
function rawAnswer(port: number, head: string): Promise<string> {
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    const s = connect(port, "127.0.0.1", () => s.end(head));
    s.on("data", (c) => chunks.push(c));
    s.on("error", fail);
    s.on("close", () => ok(Buffer.concat(chunks).toString("latin1")));
  });
}

const listen = async (server: Server): Promise<number> => {
  server.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return (server.address() as AddressInfo).port;
};

/**
 * The listener in front of an Express app (as serving/app.ts runs it), over raw sockets: the bytes it writes,
 * keep-alive, and what it leaves to Express. Requests the hit path leaves get a 299 from the app. That a hit's
 * headers and bytes equal the route's own answer is checked through the whole app in masteryHitPath.test.ts.
 */
describe("the hit path in front of Express (masteryHitListener)", () => {
  const auth = new Authenticator(SECRET, pseudo);
  const bodies = new Map<string, ServedBody>();
  const seen: { route: string; studentKey: string }[] = [];
  const enteredExpress: string[] = [];
  const checks = {
    route: "/mastery/:studentId",
    cachedPrincipal: (header: string | undefined) => auth.cachedPrincipal(header),
    studentKey: (raw: string) => pseudo.studentKey(raw),
    cachedBody: (key: string) => bodies.get(key),
    anyBackendDown: () => false,
    rateLimited: () => false,
  };
  let listenerPort = 0;
  const servers: Server[] = [];
  let authorization = "";

  beforeAll(async () => {
    authorization = `Bearer ${await signToken(SECRET, { role: "admin", sub: "root" }, "1h")}`;
    await auth.authenticate(authorization);
    // A body with a multi-byte character: Content-Length counts bytes.
    const key = pseudo.studentKey("s1");
    bodies.set(key, servedBody(JSON.stringify({ studentKey: key, note: "é ✓", topics: [] }), []));

    const app = express();
    app.use((req, _res, next) => {
      enteredExpress.push(req.url);
      next();
    });
    app.use((_req, res) => void res.status(299).json({ route: true }));
    const hit = masteryHitListener({
      ...checks,
      securityHeaders: securityHeaderList(),
      observe: (_req, res, route, studentKey) =>
        void res.on("finish", () => seen.push({ route, studentKey })),
    });
    const front = (req: IncomingMessage, res: ServerResponse) => {
      if (!hit(req, res)) app(req, res);
    };
    servers.push(createServer(front));
    listenerPort = await listen(servers[0]!);
  });
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  const request = (path: string, extra = "") =>
    `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorization}\r\nConnection: close\r\n${extra}\r\n`;
  /** "Name: value" lines of a flat (name, value, ...) list. */
  const pairs = (flat: readonly string[]) =>
    flat.flatMap((v, i) => (i % 2 === 0 ? [`${v}: ${flat[i + 1]}`] : []));
  const withoutDate = (raw: string) =>
    raw
      .split("\r\n")
      .filter((l) => !l.startsWith("Date: "))
      .join("\r\n");

  it("writes a hit whole: status line, the headers in order and case, the body's bytes", async () => {
    seen.length = 0;
    enteredExpress.length = 0;
    const b = await rawAnswer(listenerPort, request("/mastery/s1"));
    const body = bodies.get(pseudo.studentKey("s1"))!;
    // Exactly: status line, the security headers, ETag, type, length, Date, Connection, then the body.
    const expected = [
      "HTTP/1.1 200 OK",
      ...pairs(securityHeaderList()),
      `ETag: ${body.etag}`,
      "Content-Type: application/json; charset=utf-8",
      `Content-Length: ${body.buf.length}`,
      "Connection: close",
      "",
      body.buf.toString("latin1"),
    ].join("\r\n");
    expect(withoutDate(b)).toBe(expected);
    expect(b.endsWith(body.buf.toString("latin1"))).toBe(true);
    expect(b).toContain(`\r\nContent-Length: ${body.buf.length}\r\n`);
    expect(b).toContain(`\r\nETag: ${body.etag}\r\n`);
    // Helmet's headers first, in helmet's order, then ETag, type and length.
    const names = b
      .split("\r\n\r\n")[0]!
      .split("\r\n")
      .slice(1)
      .map((l) => l.slice(0, l.indexOf(":")));
    const helmet = securityHeaderList().filter((_, i) => i % 2 === 0);
    expect(names.slice(0, helmet.length + 3)).toEqual([...helmet, "ETag", "Content-Type", "Content-Length"]);
    // Observed once with the route's pattern and key; the hit never entered Express.
    expect(seen).toEqual([{ route: "/mastery/:studentId", studentKey: pseudo.studentKey("s1") }]);
    expect(enteredExpress).toEqual([]);
  });

  it("answers hit after hit on one keep-alive connection, each whole", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const body = bodies.get(pseudo.studentKey("s1"))!;
    const reused: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      const { status, buf, reusedSocket } = await new Promise<{
        status: number;
        buf: Buffer;
        reusedSocket: boolean;
      }>((ok, fail) => {
        const req = httpGet(
          { host: "127.0.0.1", port: listenerPort, path: "/mastery/s1", agent, headers: { authorization } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              ok({ status: res.statusCode ?? 0, buf: Buffer.concat(chunks), reusedSocket: req.reusedSocket }),
            );
          },
        );
        req.on("error", fail);
      });
      expect(status).toBe(200);
      expect(Buffer.compare(buf, body.buf)).toBe(0);
      reused.push(reusedSocket);
    }
    agent.destroy();
    expect(reused).toEqual([false, true, true]);
  });

  it("leaves every other request to Express untouched (nothing written, nothing observed)", async () => {
    seen.length = 0;
    enteredExpress.length = 0;
    const left = [
      request("/mastery/s2"), // not cached
      request("/mastery/s1?include=history"),
      request("/mastery/s1", 'If-None-Match: W/"x"\r\n'),
      request("/mastery/s1/T1/history"),
      `GET /mastery/s1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, // no token
    ];
    for (const head of left) {
      const raw = await rawAnswer(listenerPort, head);
      expect(raw.startsWith("HTTP/1.1 299 ")).toBe(true);
      // The stand-in route's answer, without any header the hit path writes.
      expect(raw.endsWith('{"route":true}')).toBe(true);
      expect(raw).not.toContain("Content-Security-Policy");
    }
    expect(enteredExpress.length).toBe(left.length);
    expect(seen).toEqual([]);
  });

  it("lists the security headers securityHeaderSetter sets, in its order", () => {
    const set: string[] = [];
    securityHeaderSetter()({
      setHeader: (name: string, value: string) => void set.push(name, value),
      removeHeader: () => undefined,
    } as unknown as ServerResponse);
    expect(securityHeaderList()).toEqual(set);
    expect(set.length).toBeGreaterThanOrEqual(2 * 10);
  });
});

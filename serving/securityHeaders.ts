import type { IncomingMessage, ServerResponse } from "node:http";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import helmet from "helmet";

/**
 * helmet()'s default headers, worked out ONCE at start-up and then set on every response in one loop
 * (issue 15: helmet runs its 13 middlewares per request, ~4% of the server's CPU under load). The
 * headers are exactly the ones helmet sets with these options: the middleware is run once against a
 * recording response, and the start-up fails if any of them would depend on the request (helmet's
 * defaults never do; a CSP nonce function would).
 */
export function staticSecurityHeaders(options: Parameters<typeof helmet>[0] = {}): RequestHandler {
  const setHeaders = securityHeaderSetter(options);
  return (_req: Request, res: Response, next: NextFunction) => {
    setHeaders(res);
    next();
  };
}

/**
 * staticSecurityHeaders' work without the middleware around it: sets helmet()'s headers (worked out once,
 * here) on a response. For a path that answers before the middleware chain (serving/masteryHitPath.ts).
 */
export function securityHeaderSetter(
  options: Parameters<typeof helmet>[0] = {},
): (res: ServerResponse) => void {
  const { set, removed } = recordHelmet(options);
  return (res: ServerResponse) => {
    for (const [name, value] of set) res.setHeader(name, value);
    for (const name of removed) res.removeHeader(name);
  };
}

/**
 * helmet()'s headers as one flat list (name, value, name, value, ...) in the order helmet sets them: what
 * `res.writeHead(status, list)` takes, for an answer written before any header is set (serving/masteryHitPath.ts,
 * in front of Express). The same headers and order as securityHeaderSetter; the headers helmet removes are
 * never set on such an answer (nothing sets one before it).
 */
export function securityHeaderList(options: Parameters<typeof helmet>[0] = {}): readonly string[] {
  const flat: string[] = [];
  for (const [name, value] of recordHelmet(options).set) {
    if (typeof value !== "string")
      throw new Error(
        `securityHeaderList: helmet set ${name} to a non-string value; use securityHeaderSetter`,
      );
    flat.push(name, value);
  }
  return flat;
}

/** The headers helmet sets and removes with these options, recorded once against a stand-in response. */
function recordHelmet(options: Parameters<typeof helmet>[0]): {
  set: [string, string | number | readonly string[]][];
  removed: string[];
} {
  const set: [string, string | number | readonly string[]][] = [];
  const removed: string[] = [];
  let called = false;
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      set.push([name, value]);
      return recorder;
    },
    removeHeader(name: string) {
      removed.push(name);
    },
  };
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
    called = true;
  });
  if (!called)
    throw new Error("staticSecurityHeaders: helmet did not finish synchronously; use helmet() directly");
  return { set, removed };
}

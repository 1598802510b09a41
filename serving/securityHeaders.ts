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
  return (res: ServerResponse) => {
    for (const [name, value] of set) res.setHeader(name, value);
    for (const name of removed) res.removeHeader(name);
  };
}

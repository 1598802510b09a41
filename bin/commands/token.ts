import type { Command } from "commander";
import { CliError } from "../options.ts";

interface TokenOptions {
  role: string;
  sub: string;
  classes?: string;
  children?: string;
  scopes?: string;
  ttl: string;
  demo?: boolean;
  json?: boolean;
}

const list = (v: string | undefined): string[] | undefined =>
  v === undefined
    ? undefined
    : v
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== "");

export function register(program: Command): void {
  program
    .command("token")
    .description(
      "Mint an API token (HS256, signed with MASTERY_JWT_SECRET) for development and testing; production tokens come from your LMS",
    )
    .requiredOption("--role <role>", "student | parent | teacher | admin | service")
    .requiredOption("--sub <id>", "the caller's raw LMS id (for a student: their own student id)")
    .option("--classes <ids>", "teacher: class ids, comma-separated (access still needs the class roster)")
    .option("--children <ids>", "parent: the children's raw student ids, comma-separated")
    .option(
      "--scopes <scopes>",
      "service: scopes, comma-separated (e.g. events:write,mastery:read,roster:write)",
    )
    .option(
      "--ttl <duration>",
      "lifetime: 3600, 90m, 8h, 1d (at most MASTERY_JWT_MAX_TTL, default 24h)",
      "1h",
    )
    .option(
      "--demo",
      "sign with the PUBLIC demo secret when MASTERY_JWT_SECRET is unset (for `serve --demo` only)",
    )
    .option("--json", "print {token, claims, exp} as JSON instead of the bare token")
    .addHelpText(
      "after",
      `
Prints the token alone on stdout (a summary on stderr), so it can be captured:
  export MASTERY_JWT_SECRET=$(openssl rand -hex 32)      # the same secret as the server's
  TOKEN=$(npx mastery token --role teacher --sub T1 --classes cls1,cls2 --ttl 8h)
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/classes/cls1/mastery
  npx mastery token --role service --sub sis --scopes roster:write,roster:read --ttl 1h
  npx mastery token --role parent --sub P7 --children stu-000001,stu-000002
  npx mastery token --demo --role admin --sub demo-admin --ttl 12h   # for \`mastery serve --demo\`

For development and testing only: in production the LMS (or its identity provider) mints tokens with
the shared secret. Tokens must carry exp; the server refuses lifetimes above MASTERY_JWT_MAX_TTL.`,
    )
    .action(async (opts: TokenOptions) => {
      const { jwtSecretFromEnv, maxTtlFromEnv, mintToken, parseDuration, formatDuration } = await import(
        "../../serving/auth.ts"
      );
      const secret = jwtSecretFromEnv({ demo: opts.demo === true });
      const ttlSec = parseDuration(opts.ttl, "--ttl");
      const spec = {
        role: opts.role,
        sub: opts.sub,
        ttlSec,
        ...(list(opts.classes) !== undefined ? { classes: list(opts.classes)! } : {}),
        ...(list(opts.children) !== undefined ? { children: list(opts.children)! } : {}),
        ...(list(opts.scopes) !== undefined ? { scopes: list(opts.scopes)! } : {}),
      };
      const minted = await mintToken(secret, spec, maxTtlFromEnv()).catch((err: unknown) => {
        throw new CliError((err as Error).message);
      });
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ token: minted.token, claims: minted.claims, exp: minted.exp })}\n`,
        );
      } else {
        process.stdout.write(`${minted.token}\n`);
      }
      const c = minted.claims;
      const extra = c.classes ?? c.children ?? c.scopes;
      process.stderr.write(
        `${c.role} ${c.sub}${extra !== undefined ? ` [${extra.join(",")}]` : ""}, expires ${new Date(minted.exp * 1000).toISOString()} ` +
          `(${formatDuration(ttlSec)}); a development/testing token: production tokens come from the LMS\n`,
      );
    });
}

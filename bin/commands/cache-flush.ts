import type { Command } from "commander";
import { openCachePublisher } from "../../serving/servingBackends.ts";
import { streamStoreConfigFromEnv } from "../../serving/streamStores.ts";
import { CliError } from "../options.ts";

export function register(program: Command): void {
  program
    .command("cache-flush")
    .description(
      "Tell every `mastery serve` process on MASTERY_REDIS_URL (key prefix MASTERY_REDIS_PREFIX) to drop its whole " +
        "GET /mastery body cache: run it after a bulk change of scores outside the servers and workers " +
        "(SQL fix, restore of student_mastery, a bulk job)",
    )
    .addHelpText(
      "after",
      `
Servers hear it over Redis pub/sub (the channel <prefix>:bodycache); a server not subscribed at that
moment has cleared its cache anyway and serves with the 1 s TTL until it is subscribed again.

Example:
  MASTERY_REDIS_URL=redis://127.0.0.1:6379 npx mastery cache-flush
`,
    )
    .action(async () => {
      const cfg = streamStoreConfigFromEnv("");
      if (cfg.redisUrl === undefined)
        throw new CliError(
          "cache-flush needs MASTERY_REDIS_URL (e.g. redis://127.0.0.1:6379): without Redis the servers keep bodies 1 s only",
        );
      const publisher = await openCachePublisher(cfg);
      try {
        await publisher?.publishAll();
        process.stderr.write(`cache-flush: published on ${publisher?.channel}\n`);
      } finally {
        await publisher?.close();
      }
    });
}

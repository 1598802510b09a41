import type { Command } from "commander";
import { CliError, commandGroup, defaultDbPath } from "../options.ts";

interface RekeyCliOptions {
  db?: string;
  newKeyFile?: string;
  decrypt?: boolean;
  out?: string;
  dropOld?: boolean;
}

export function register(program: Command): void {
  const db = commandGroup(
    program,
    "db",
    "The embedded DuckDB file: encryption status, key rotation (rekey), DuckDB's crypto module, compaction of the serving tables",
  );
  db.command("status")
    .description("Whether the DuckDB file is encrypted and whether the configured key opens it")
    .option("--db <file>", "DuckDB file (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .addHelpText(
      "after",
      "\nExample:\n  MASTERY_DB_KEY_FILE=/etc/mastery/db.key npx mastery db status --db /var/lib/mastery/mastery.duckdb",
    )
    .action(async (opts: { db?: string }) => {
      const { DuckStore, dbEncryptionFromEnv, isEncryptedDuckDbFile } = await import(
        "../../storage/duckdb.ts"
      );
      const path = opts.db ?? defaultDbPath();
      const encrypted = await isEncryptedDuckDbFile(path);
      const configured = dbEncryptionFromEnv();
      const lines = [`${path}: ${encrypted ? "encrypted (DuckDB AES-256-GCM)" : "NOT encrypted"}`];
      lines.push(
        configured === null
          ? "key: none configured (MASTERY_DB_KEY / MASTERY_DB_KEY_FILE)"
          : `key: configured; crypto module for writing: ${configured.crypto}`,
      );
      if (encrypted === (configured !== null)) {
        const store = await DuckStore.open(path);
        lines.push(`opens: yes (${(await store.tableNames()).length} tables)`);
        store.close();
      } else if (encrypted) lines.push("opens: no: set MASTERY_DB_KEY or MASTERY_DB_KEY_FILE");
      else
        lines.push(
          "opens: no while a key is set: encrypt it first with `mastery db rekey --new-key-file FILE`",
        );
      process.stdout.write(`${lines.join("\n")}\n`);
    });
  db.command("compact")
    .description(
      "Fold the serving tables' append-only deltas (student_mastery_delta, learner_state_delta) into their base tables, then CHECKPOINT",
    )
    .option("--db <file>", "DuckDB file (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option("--if-needed", "only when a delta passes batch.compactShare / compactAfterDays (0.25 / 7 days)")
    .addHelpText(
      "after",
      `
The daily batch (\`mastery schedule\`) compacts on its own past those limits; run this after a day of heavy
stream traffic or before a backup. It rewrites every row group holding a folded key (minutes at 10M events);
readers see the same rows before and after. Example:
  npx mastery db compact --db /var/lib/mastery/mastery.duckdb`,
    )
    .action(async (opts: { db?: string; ifNeeded?: boolean }) => {
      const { DuckStore } = await import("../../storage/duckdb.ts");
      const { compactServingTables, compactionReason, deltaShares, DEFAULT_COMPACTION } = await import(
        "../../storage/servingTables.ts"
      );
      const store = await DuckStore.open(opts.db ?? defaultDbPath());
      try {
        const shares = await deltaShares(store, Date.now() * 1000);
        for (const s of shares)
          process.stdout.write(
            `${s.table}: ${s.deltaRows} delta rows, ${s.baseRows} base rows${s.oldestDays === null ? "" : `, oldest ${s.oldestDays.toFixed(1)} days`}\n`,
          );
        const why = compactionReason(shares, DEFAULT_COMPACTION);
        if (opts.ifNeeded === true && why === null) {
          process.stdout.write("no compaction needed\n");
          return;
        }
        const r = await compactServingTables(store);
        process.stdout.write(
          `compacted${why === null ? "" : ` (${why})`}: ${r.folded.student_mastery} student_mastery keys, ${r.folded.learner_state} learner_state keys in ${(r.millis / 1000).toFixed(1)} s\n`,
        );
      } finally {
        store.close();
      }
    });
  db.command("rekey")
    .description(
      "Copy the DuckDB file under a new key (encrypt a plain file, rotate a key, or --decrypt), check every table's row count, and swap it in",
    )
    .option("--db <file>", "DuckDB file (default: $MASTERY_DB or .mastery/mastery.duckdb)")
    .option(
      "--new-key-file <file>",
      "file whose first line is the new key (>= 32 characters; `openssl rand -hex 32`)",
    )
    .option("--decrypt", "write a plain (unencrypted) file instead")
    .option("--out <file>", "write the copy here and leave the file alone (default: replace it in place)")
    .option("--drop-old", "in place: delete the old file instead of keeping it as <file>.pre-rekey")
    .addHelpText(
      "after",
      `
The current key comes from MASTERY_DB_KEY / MASTERY_DB_KEY_FILE (none for a plain file). Stop every
process using the file first (the server holds it). Examples:
  openssl rand -hex 32 > /etc/mastery/db.key.new && chmod 600 /etc/mastery/db.key.new
  npx mastery db rekey --new-key-file /etc/mastery/db.key.new                 # plain -> encrypted
  MASTERY_DB_KEY_FILE=/etc/mastery/db.key npx mastery db rekey --new-key-file /etc/mastery/db.key.new
  mv /etc/mastery/db.key.new /etc/mastery/db.key    # then restart with the new key; shred <file>.pre-rekey`,
    )
    .action(async (opts: RekeyCliOptions) => {
      const { dbEncryptionFromEnv, isEncryptedDuckDbFile, readKeyFile, rekeyDuckDbFile, DB_CRYPTO_ENV } =
        await import("../../storage/duckdb.ts");
      if ((opts.newKeyFile === undefined) === (opts.decrypt !== true))
        throw new CliError("pass exactly one of --new-key-file FILE or --decrypt");
      const path = opts.db ?? defaultDbPath();
      const current = dbEncryptionFromEnv();
      if ((await isEncryptedDuckDbFile(path)) && current === null)
        throw new CliError(
          `${path} is encrypted: set MASTERY_DB_KEY or MASTERY_DB_KEY_FILE to its current key`,
        );
      const toKey = opts.newKeyFile !== undefined ? readKeyFile(opts.newKeyFile, "--new-key-file") : null;
      const crypto =
        current?.crypto ?? (process.env[DB_CRYPTO_ENV] === "mbedtls-unsafe" ? "mbedtls-unsafe" : "openssl");
      const r = await rekeyDuckDbFile(path, {
        fromKey: (await isEncryptedDuckDbFile(path)) ? (current?.key ?? null) : null,
        toKey,
        crypto,
        ...(opts.out !== undefined ? { out: opts.out } : {}),
        ...(opts.dropOld === true ? { dropOld: true } : {}),
      });
      process.stdout.write(
        `${r.path}: ${toKey === null ? "plain (decrypted)" : "encrypted under the new key"}; ${r.tables} tables, ${r.rows} rows copied and checked\n`,
      );
      if (r.kept !== null)
        process.stderr.write(
          `the old file is kept at ${r.kept}: it opens with the OLD key (or is plain text); delete it securely (shred -u) once the new one is checked\n`,
        );
      if (toKey !== null && opts.out === undefined)
        process.stderr.write(
          "from now on start every mastery process with the NEW key (MASTERY_DB_KEY or MASTERY_DB_KEY_FILE)\n",
        );
    });
  db.command("install-httpfs")
    .description(
      "Install DuckDB's httpfs extension (its OpenSSL crypto module, needed to WRITE an encrypted file securely) into ~/.duckdb/extensions; needs network access once",
    )
    .addHelpText("after", "\nExample:\n  npx mastery db install-httpfs")
    .action(async () => {
      const { installHttpfs } = await import("../../storage/duckdb.ts");
      process.stdout.write(`httpfs installed: ${await installHttpfs()}\n`);
    });
}

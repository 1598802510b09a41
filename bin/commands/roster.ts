import type { Command } from "commander";
import { commandGroup, defaultDbPath } from "../options.ts";

interface RosterOptions {
  db?: string;
  merge?: boolean;
  demo?: boolean;
  json?: boolean;
}

/** Opens the roster tables (PostgreSQL when MASTERY_PG_URL is set, else the DuckDB file), runs fn, closes. */
async function withRoster<T>(
  opts: RosterOptions,
  fn: (roster: import("../../storage/rosterStore.ts").RosterStore, location: string) => Promise<T>,
): Promise<T> {
  const { openRosterStore } = await import("../../serving/roster.ts");
  const { DuckStore } = await import("../../storage/duckdb.ts");
  let duck: import("../../storage/duckdb.ts").DuckStore | undefined;
  const opened = await openRosterStore({
    pgUrl: process.env.MASTERY_PG_URL,
    pgSchema: process.env.MASTERY_PG_SCHEMA,
    duck: async () => {
      duck = await DuckStore.open(opts.db ?? defaultDbPath());
      return duck;
    },
  });
  try {
    return await fn(opened.roster, opened.location);
  } finally {
    await opened.close();
    duck?.close();
  }
}

export function register(program: Command): void {
  const roster = commandGroup(
    program,
    "roster",
    "Class rosters: which students are in which class (and, optionally, which teachers teach it); the only source of teacher access",
  );
  roster
    .command("load <file>")
    .description(
      "Load class lists from CSV/TSV (columns class_id, student_id[, teacher_id]); raw student ids are pseudonymized at once. Each class in the file is replaced unless --merge",
    )
    .option("--merge", "add the file's students and teachers to their classes instead of replacing them")
    .option("--demo", "pseudonymize with the public demo key when MASTERY_PSEUDONYM_KEY is unset")
    .option("--db <file>", "DuckDB file (ignored when MASTERY_PG_URL is set)")
    .option("--json", "print the load report as JSON")
    .addHelpText(
      "after",
      `
Example (roster.csv):
  class_id,student_id,teacher_id
  cls1,stu-17,
  cls1,stu-18,
  cls1,,T1           # optional: only T1 may see cls1 (else any teacher whose token lists cls1)

  MASTERY_PSEUDONYM_KEY=... npx mastery roster load roster.csv
  npx mastery roster load out/synthetic/roster.csv --demo --db .mastery/demo/mastery.duckdb

Where: PostgreSQL when MASTERY_PG_URL is set (works while \`mastery serve\` runs; the server picks the
change up within 5 s), else the DuckDB file (stop the server first, or use PUT /roster/classes/{classId}).
A file with any bad row is refused whole, naming the lines.`,
    )
    .action(async (file: string, opts: RosterOptions) => {
      const { pseudonymizerFromEnv } = await import("../../features/pseudonymize.ts");
      const { loadRosterFile } = await import("../../serving/roster.ts");
      const pseudonymizer = pseudonymizerFromEnv({ demo: opts.demo === true });
      await withRoster(opts, async (store, location) => {
        const r = await loadRosterFile(store, file, pseudonymizer, {
          ...(opts.merge === true ? { merge: true } : {}),
          actor: process.env.USER ?? "cli",
        });
        const total = await store.summary();
        if (opts.json) process.stdout.write(`${JSON.stringify({ ...r, location, total })}\n`);
        else
          process.stdout.write(
            `roster: ${r.mode === "merge" ? "merged" : "replaced"} ${r.classes} classes from ${r.rows} rows ` +
              `(${r.students} students, ${r.teachers} teachers) into ${location}; ` +
              `now ${total.classes} classes, ${total.students} students\n`,
          );
      });
    });
  roster
    .command("show <classId>")
    .description("A class's roster: student keys (pseudonyms), teachers, who loaded it and when")
    .option("--db <file>", "DuckDB file (ignored when MASTERY_PG_URL is set)")
    .option("--json", "print JSON")
    .addHelpText("after", "\nExample:\n  npx mastery roster show cls00001 --db .mastery/demo/mastery.duckdb")
    .action(async (classId: string, opts: RosterOptions) => {
      const { CliError } = await import("../options.ts");
      await withRoster(opts, async (store, location) => {
        const c = await store.getClass(classId);
        if (c === undefined)
          throw new CliError(
            `class "${classId}" has no roster in ${location}: load one with \`mastery roster load FILE.csv\``,
          );
        if (opts.json) process.stdout.write(`${JSON.stringify(c)}\n`);
        else
          process.stdout.write(
            `${c.classId}: ${c.studentKeys.length} students, teachers ${c.teacherIds.length > 0 ? c.teacherIds.join(", ") : "(any teacher whose token lists the class)"}; ` +
              `loaded ${c.updatedAt.toISOString()} by ${c.updatedBy} from ${c.source}\n${c.studentKeys.join("\n")}\n`,
          );
      });
    });
}

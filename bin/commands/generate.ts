import type { Command } from "commander";
import { generateSynthetic } from "../../features/synthetic/generate.ts";
import { CliError, parseIntOption } from "../options.ts";
import { Progress } from "../progress.ts";

interface GenerateCliOptions {
  students: string;
  topics: string;
  days: string;
  seed: string;
  out: string;
  start: string;
  eventsPerDay: string;
  truthEvery: string;
  workers?: string;
}

export function register(program: Command): void {
  program
    .command("generate")
    .description(
      "Generate a synthetic learning-event data set from a latent learning/forgetting process: quiz_attempts, assignments, videos, practice, chatbot CSVs + topics.json + ground_truth.csv + manifest.json. Same seed -> byte-identical files",
    )
    .option("--students <n>", "number of students", "1000")
    .option("--topics <n>", "number of topics (grouped ~8 per chapter, ~40 per subject)", "120")
    .option("--days <n>", "length of the window in days", "30")
    .option("--seed <n>", "random seed (non-negative integer)", "1")
    .requiredOption("--out <dir>", "output directory (created if missing; files are overwritten)")
    .option("--start <date>", "first day of the window, YYYY-MM-DD (UTC)", "2026-09-01")
    .option(
      "--events-per-day <x>",
      "mean events per student per day, population average (active days carry more, idle days none)",
      "3.4",
    )
    .option(
      "--truth-every <days>",
      "ground-truth snapshot every N days plus the final day (0 = final day only)",
      "7",
    )
    .option(
      "--workers <n>",
      "worker threads (0 = main thread only; default: one per core from 20,000 students); does not change the output",
    )
    .addHelpText(
      "after",
      `
Volume: events ~= students x days x events-per-day (about 60% quiz attempts, 15% videos,
12% practice, 5% assignments, 8% chatbot). ~10 million events: --students 100000 --days 30.

Examples:
  npx mastery generate --students 500 --days 30 --seed 7 --out out/synth-small
  npx mastery generate --students 100000 --topics 120 --days 30 --seed 1 --out out/synth-10m`,
    )
    .action(async (opts: GenerateCliOptions) => {
      const students = parseIntOption(opts.students, "--students", 1);
      const days = parseIntOption(opts.days, "--days", 1);
      const eventsPerDay = Number(opts.eventsPerDay);
      if (!(eventsPerDay > 0 && eventsPerDay <= 500))
        throw new CliError(`--events-per-day must be a number in (0, 500] (got "${opts.eventsPerDay}")`);
      const progress = new Progress("generate", students);
      const started = performance.now();
      const manifest = await generateSynthetic({
        students,
        topics: parseIntOption(opts.topics, "--topics", 1),
        days,
        seed: parseIntOption(opts.seed, "--seed", 0),
        start: opts.start,
        eventsPerDay,
        truthEvery: parseIntOption(opts.truthEvery, "--truth-every", 0),
        outDir: opts.out,
        ...(opts.workers === undefined ? {} : { workers: parseIntOption(opts.workers, "--workers", 0) }),
        onProgress: (done) => {
          if (done < students) progress.set(done);
        },
      });
      const secs = (performance.now() - started) / 1000;
      const c = manifest.counts;
      progress.finish(`${c.events} events`);
      process.stdout.write(
        `${JSON.stringify({ out: opts.out, events: c.events, seconds: Number(secs.toFixed(2)), eventsPerSec: Math.round(c.events / secs), counts: c })}\n`,
      );
    });
}

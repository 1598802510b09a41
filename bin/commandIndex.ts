/**
 * The index of top-level commands: which file(s) in bin/commands define each one, and a one-line summary
 * for `mastery --help`. bin/cli.ts imports only the file(s) of the command being run, so `--version`,
 * `--help` and light commands never load DuckDB, tfjs or onnxruntime. A command's full description,
 * options and example live in its own file (`mastery <command> --help`); test/bin/commandIndex.test.ts
 * checks this index against what those files register.
 */
export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  /** The defining file (without extension), or per subcommand the file that defines it. */
  readonly files: string | Readonly<Record<string, string>>;
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: "cache-flush",
    summary: "tell every server to drop its GET /mastery body cache (after a bulk change of scores)",
    files: "cache-flush",
  },
  {
    name: "calibration-report",
    summary: "calibration per group (skill, school, grade ...): ECE and reliability bins",
    files: "calibration-report",
  },
  {
    name: "db",
    summary: "the embedded DuckDB file: encryption status, rekey, compaction of the serving tables",
    files: "db",
  },
  { name: "demo", summary: "the whole batch pipeline on generated data, with a summary", files: "demo" },
  {
    name: "drift",
    summary: "drift monitoring: feature/score shift and live performance",
    files: "drift",
  },
  {
    name: "evaluate",
    summary: "online next-response evaluation of a trained model (auc, rmse, logloss, ece)",
    files: "evaluate",
  },
  {
    name: "experiments",
    summary: "A/B experiments: assignment, shares, outcome reports",
    files: "experiments",
  },
  {
    name: "export",
    summary: "exports for analysts: served scores as of a time to CSV",
    files: "export",
  },
  { name: "features", summary: "7/30/90-day windowed features per (student, topic)", files: "features" },
  { name: "generate", summary: "synthetic learning events (same seed, same bytes)", files: "generate" },
  {
    name: "ingest",
    summary: "validate, pseudonymize and de-duplicate event files into the raw zone",
    files: "ingest",
  },
  {
    name: "models",
    summary: "model registry: versions, aliases, promotion gate, rollback, lineage",
    files: "models",
  },
  { name: "onnx", summary: "ONNX export, import and check", files: "onnx" },
  {
    name: "quality",
    summary: "data-quality report: completeness, freshness, dead letters",
    files: "quality",
  },
  {
    name: "recompute",
    summary: "replay every raw event and reconcile with the streamed state",
    files: "recompute",
  },
  {
    name: "retrain",
    summary: "drift-triggered retraining through the promotion gate",
    files: "retrain",
  },
  { name: "roster", summary: "class rosters: the only source of teacher access", files: "roster" },
  {
    name: "schedule",
    summary: "run the daily batch and drift/retrain checks at configured times, with a lock and run records",
    files: "schedule",
  },
  {
    name: "score",
    summary: "compute mastery scores (rules, bkt-elo, served)",
    files: { rules: "score", "bkt-elo": "score-bkt-elo", served: "score-served" },
  },
  { name: "serve", summary: "the HTTP API and dashboard", files: "serve" },
  { name: "token", summary: "a development/testing API token", files: "token" },
  {
    name: "train",
    summary: "fit a model (rule, bkt, elo, gbt, mlp, blend, served) and write DIR/model.json",
    files: {
      rule: "train-rule",
      bkt: "train-bkt",
      elo: "train-elo",
      gbt: "train-ml",
      mlp: "train-ml",
      blend: "train-ml",
      served: "train-served",
    },
  },
  { name: "worker", summary: "the NATS JetStream stream consumer", files: "worker" },
];

/** The first argument that is not an option, from `from` on (commander's root options take no value). */
function positional(args: readonly string[], from: number): { value: string; index: number } | undefined {
  for (let i = from; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") return undefined;
    if (!a.startsWith("-")) return { value: a, index: i };
  }
  return undefined;
}

export interface CommandPlan {
  /** The top-level command named on the command line, if it is a known one. */
  entry: CommandEntry | undefined;
  /** bin/commands files to import, without extension. */
  files: string[];
}

/** Which files the command line `args` (process.argv without node and the script) needs. */
export function planCommand(args: readonly string[]): CommandPlan {
  const first = positional(args, 0);
  const entry = first === undefined ? undefined : COMMANDS.find((c) => c.name === first.value);
  if (entry === undefined || first === undefined) return { entry: undefined, files: [] };
  const sub = positional(args, first.index + 1)?.value;
  let files: string[];
  if (typeof entry.files === "string") files = [entry.files];
  else {
    const own = sub === undefined ? undefined : entry.files[sub];
    files = own !== undefined ? [own] : [...new Set(Object.values(entry.files))];
  }
  return { entry, files };
}

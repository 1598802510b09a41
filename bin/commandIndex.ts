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
  /**
   * Subcommands (or true: all) that read a model.json of any kind (evaluation, the promotion gate), so
   * every kind's predictor must be registered first (training/evaluate.ts registerPredictor).
   */
  readonly modelKinds?: true | readonly string[];
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: "calibration-report",
    summary: "calibration per group (skill, school, grade ...): ECE and reliability bins",
    files: "calibration-report",
    modelKinds: true,
  },
  { name: "db", summary: "the embedded DuckDB file: encryption status, rekey", files: "db" },
  { name: "demo", summary: "the whole batch pipeline on generated data, with a summary", files: "demo" },
  {
    name: "drift",
    summary: "drift monitoring: feature/score shift and live performance",
    files: "drift",
    modelKinds: true,
  },
  {
    name: "evaluate",
    summary: "online next-response evaluation of a trained model (auc, rmse, logloss, ece)",
    files: "evaluate",
    modelKinds: true,
  },
  {
    name: "experiments",
    summary: "A/B experiments: assignment, shares, outcome reports",
    files: "experiments",
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
    modelKinds: ["register", "promote"],
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
    modelKinds: true,
  },
  { name: "roster", summary: "class rosters: the only source of teacher access", files: "roster" },
  {
    name: "schedule",
    summary: "run the daily batch and drift/retrain checks at configured times, with a lock and run records",
    files: "schedule",
    modelKinds: true,
  },
  {
    name: "score",
    summary: "compute mastery scores (rules, bkt-elo)",
    files: { rules: "score", "bkt-elo": "score-bkt-elo" },
  },
  { name: "serve", summary: "the HTTP API and dashboard", files: "serve", modelKinds: true },
  { name: "token", summary: "a development/testing API token", files: "token" },
  {
    name: "train",
    summary: "fit a model (bkt, elo, gbt, mlp, blend) and write DIR/model.json",
    files: { bkt: "train-bkt", elo: "train-elo", gbt: "train-ml", mlp: "train-ml", blend: "train-ml" },
  },
  { name: "worker", summary: "the NATS JetStream stream consumer", files: "worker" },
];

/** Training modules that register a predictor for their model kind when imported. */
export const MODEL_KIND_MODULES: readonly string[] = [
  "training/bktFit",
  "training/elo",
  "training/gbtTrain",
  "training/mlpTrain",
  "training/blendTrain",
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
  /** Whether every model kind's predictor must be registered. */
  modelKinds: boolean;
}

/** Which files the command line `args` (process.argv without node and the script) needs. */
export function planCommand(args: readonly string[]): CommandPlan {
  const first = positional(args, 0);
  const entry = first === undefined ? undefined : COMMANDS.find((c) => c.name === first.value);
  if (entry === undefined || first === undefined) return { entry: undefined, files: [], modelKinds: false };
  const sub = positional(args, first.index + 1)?.value;
  let files: string[];
  if (typeof entry.files === "string") files = [entry.files];
  else {
    const own = sub === undefined ? undefined : entry.files[sub];
    files = own !== undefined ? [own] : [...new Set(Object.values(entry.files))];
  }
  const mk = entry.modelKinds;
  const modelKinds = mk === true || (mk !== undefined && sub !== undefined && mk.includes(sub));
  return { entry, files, modelKinds };
}

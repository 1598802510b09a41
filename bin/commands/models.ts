import { userInfo } from "node:os";
import type { Command } from "commander";
import { dataFileWindow } from "../../registry/provenance.ts";
import {
  formatModelVersion,
  type MetricCondition,
  openRegistry,
  parseMetricCondition,
  type Registry,
} from "../../registry/registry.ts";
import type { DataWindow, Json, ModelVersion } from "../../registry/store.ts";
import { DEFAULT_GATE, type GateConfig, promotionGate } from "../../training/gate.ts";
import { loadModel } from "../../training/kinds.ts";
import { evaluateModel, registryMetrics } from "../../training/modelKind.ts";
import { promoteWithGate } from "../../training/promote.ts";
import { loadResponses, parseResponseColumns } from "../../training/responses.ts";
import {
  CliError,
  commandGroup,
  defaultDbPath,
  parseIntOption,
  type RowOptions,
  rowReading,
  rowReadingOptions,
} from "../options.ts";
import { Progress } from "../progress.ts";

interface StoreOptions {
  db?: string;
  artifacts?: string;
  json?: boolean;
}

function actorName(flag?: string): string {
  if (flag) return flag;
  try {
    return process.env.USER ?? userInfo().username;
  } catch {
    return "unknown";
  }
}

/** Opens the registry (PostgreSQL when MASTERY_PG_URL is set, else the DuckDB file), runs fn, closes. */
async function withRegistry<T>(opts: StoreOptions, fn: (r: Registry) => Promise<T>): Promise<T> {
  const { registry, opened } = await openRegistry({
    pgUrl: process.env.MASTERY_PG_URL,
    pgSchema: process.env.MASTERY_PG_SCHEMA,
    dbPath: opts.db ?? defaultDbPath(),
    artifactBase: opts.artifacts ?? process.env.MASTERY_ARTIFACTS ?? ".mastery/artifacts",
  });
  try {
    return await fn(registry);
  } finally {
    await opened.close();
  }
}

function storeOptions(cmd: Command): Command {
  return cmd
    .option("--db <file>", "DuckDB file (ignored when MASTERY_PG_URL is set)", undefined)
    .option("--artifacts <dir>", "artifact store directory (default .mastery/artifacts or MASTERY_ARTIFACTS)")
    .option("--json", "print JSON instead of text");
}

function versionNumber(value: string, flag: string): number {
  return parseIntOption(value, flag, 1);
}

function out(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
}

function oneLine(v: ModelVersion): string {
  const metrics = Object.entries(v.metrics)
    .map(([k, x]) => `${k}=${Number(x.toFixed(4))}`)
    .join(" ");
  return [
    formatModelVersion(v.name, v.version).padEnd(24),
    v.kind.padEnd(8),
    v.createdAt.slice(0, 19).padEnd(20),
    (v.aliases.join(",") || "-").padEnd(20),
    (v.tags.join(",") || "-").padEnd(16),
    metrics,
  ].join(" ");
}

/**
 * The gate's metric rules (training/gate.ts) applied to two versions' recorded holdout metrics (no group
 * check: that needs the holdout rows; `models compare --holdout` runs the full gate).
 */
export function recordedVerdict(
  a: { [key: string]: number },
  b: { [key: string]: number },
  gate: GateConfig,
): { pass: boolean; summary: string; checks: { name: string; pass: boolean; reason: string }[] } {
  const rules: [string, number, (d: number) => boolean, string][] = [
    ["auc", gate.minAucGain, (d) => d >= gate.minAucGain, `gain >= +${gate.minAucGain}`],
    ["logloss", gate.minLoglossGain, (d) => d <= -gate.minLoglossGain, `reduction >= ${gate.minLoglossGain}`],
    ["ece", gate.maxEceIncrease, (d) => d <= gate.maxEceIncrease, `increase <= +${gate.maxEceIncrease}`],
  ];
  const checks = rules.map(([name, , ok, rule]) => {
    const x = a[name];
    const y = b[name];
    if (x === undefined || y === undefined)
      return {
        name,
        pass: false,
        reason: `${name} is not recorded for both versions; register them with --holdout FILE --columns SPEC (or compare with --holdout)`,
      };
    const d = y - x;
    const pass = ok(d);
    return {
      name,
      pass,
      reason: `${name} ${y.toFixed(4)} vs ${x.toFixed(4)} (${d >= 0 ? "+" : ""}${d.toFixed(4)}); ${pass ? "meets" : "misses"} ${rule}`,
    };
  });
  const failed = checks.filter((c) => !c.pass).map((c) => c.name);
  const pass = failed.length === 0;
  return {
    pass,
    checks,
    summary: `${pass ? "PASS" : `FAIL (${failed.join(", ")})`} on the recorded holdout metrics (group calibration not checked)`,
  };
}

function describeData(d: DataWindow): string {
  const parts: string[] = [];
  if (d.from || d.to) parts.push(`${d.from ?? "…"} .. ${d.to ?? "…"}`);
  if (d.file) parts.push(d.file);
  if (d.sha256) parts.push(`sha256 ${d.sha256.slice(0, 16)}…`);
  if (d.rows !== undefined) parts.push(`${d.rows} rows`);
  return parts.join(", ") || "(not recorded)";
}

function parseJsonOption(value: string, flag: string): { [key: string]: Json } {
  try {
    const v = JSON.parse(value) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    return v as { [key: string]: Json };
  } catch (err) {
    throw new CliError(`${flag} must be a JSON object, e.g. '{"auc":0.74}' (${(err as Error).message})`);
  }
}

function numberOption(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new CliError(`${flag} must be a number (got "${value}")`);
  return n;
}

export function register(program: Command): void {
  const models = commandGroup(
    program,
    "models",
    "Model registry: versions, aliases (champion, challenger, ...), promotion gate, rollback, lineage",
  );

  storeOptions(models.command("list"))
    .description("List registered versions; filter by name, kind, tag and metric thresholds")
    .option("--name <name>", "only this model name")
    .option("--kind <kind>", "only this kind (bkt, elo, gbt, mlp, blend, ...)")
    .option("--tag <tag>", "only versions with this tag")
    .option("--metric <cond...>", 'metric thresholds, e.g. "auc>=0.75" "logloss<0.5"')
    .addHelpText("after", `\nExample:\n  npx mastery models list --kind elo --metric "auc>=0.7" --json\n`)
    .action(
      async (opts: StoreOptions & { name?: string; kind?: string; tag?: string; metric?: string[] }) => {
        const metrics: MetricCondition[] = (opts.metric ?? []).map(parseMetricCondition);
        const rows = await withRegistry(opts, (r) =>
          r.search({
            ...(opts.name !== undefined ? { name: opts.name } : {}),
            ...(opts.kind !== undefined ? { kind: opts.kind } : {}),
            ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
            metrics,
          }),
        );
        out(opts.json, rows, () =>
          rows.length === 0
            ? "(no versions match)"
            : [
                `${"version".padEnd(24)} ${"kind".padEnd(8)} ${"created".padEnd(20)} ${"aliases".padEnd(20)} ${"tags".padEnd(16)} metrics`,
                ...rows.map(oneLine),
              ].join("\n"),
        );
      },
    );

  storeOptions(models.command("show"))
    .description(
      "Show one version (NAME@VERSION, NAME@ALIAS or NAME for the latest) with its artifacts and alias history",
    )
    .argument("<ref>", "NAME@VERSION | NAME@ALIAS | NAME")
    .addHelpText("after", `\nExample:\n  npx mastery models show mastery-elo@champion\n`)
    .action(async (ref: string, opts: StoreOptions) => {
      const res = await withRegistry(opts, async (r) => {
        const v = await r.resolve(ref);
        const history = (await r.store.aliasHistory(v.name)).filter(
          (h) => h.toVersion === v.version || h.fromVersion === v.version,
        );
        return { ...v, artifactBase: r.artifacts.base, aliasHistory: history };
      });
      out(opts.json, res, () =>
        [
          `${formatModelVersion(res.name, res.version)}  kind=${res.kind}  created ${res.createdAt} by ${res.createdBy}`,
          `aliases:        ${res.aliases.join(", ") || "-"}`,
          `tags:           ${res.tags.join(", ") || "-"}`,
          `metrics:        ${JSON.stringify(res.metrics)}`,
          `params:         ${JSON.stringify(res.params)}`,
          `data:           ${describeData(res.data)}`,
          `feature schema: ${res.featureSchemaHash}`,
          `code commit:    ${res.codeCommit}`,
          `parent:         ${res.parent ? formatModelVersion(res.parent.name, res.parent.version) : "-"}`,
          `artifacts (${res.artifactBase}):`,
          ...res.artifacts.map((a) => `  ${a.path.padEnd(28)} ${a.sha256}  ${a.sizeBytes} B`),
          "alias history touching this version:",
          ...res.aliasHistory.map(
            (h) =>
              `  ${h.movedAt} ${h.alias}: ${h.fromVersion ?? "-"} -> ${h.toVersion ?? "-"} (${h.action}${h.forced ? ", FORCED" : ""}) by ${h.actor}: ${h.reason}`,
          ),
        ].join("\n"),
      );
    });

  storeOptions(models.command("register"))
    .description(
      "Register a trained model directory (model.json with a kind + any files) as the next version of NAME",
    )
    .argument("<name>", "model name, e.g. mastery-elo")
    .requiredOption("--dir <dir>", "directory written by `mastery train ...` (holds model.json)")
    .option(
      "--metrics <json>",
      'metrics as JSON, e.g. \'{"auc":0.74,"logloss":0.55}\' (default: model.json "metrics")',
    )
    .option("--params <json>", 'params as JSON (default: model.json "fitParams" + "seed", or "params")')
    .option(
      "--holdout <file>",
      "holdout response log (CSV/TSV): the model is scored on it and auc, rmse, logloss, ece, n are recorded",
    )
    .option(
      "--columns <spec>",
      "column roles of --holdout: user=COL,skill=COL,correct=COL[,item=COL][,order=COL]",
    )
    .option("--sep <sep>", "field separator of --holdout; default: tab if the header has one, else comma")
    .option("--data-file <file>", "training data file: its sha256 and row count are recorded")
    .option("--data-from <iso>", "start of the training-data window (ISO 8601)")
    .option("--data-to <iso>", "end of the training-data window (ISO 8601)")
    .option("--feature-schema-hash <hash>", "override the hash derived from model.json's features/columns")
    .option("--parent <ref>", "version this one was derived from (VERSION of the same name, or NAME@VERSION)")
    .option("--tag <tag...>", "tags (e.g. baseline team=ml)")
    .option("--description <text>", "free text")
    .option("--actor <who>", "who registers (default $USER)")
    .addHelpText(
      "after",
      `\nExample:\n  npx mastery train elo --data train.csv --columns user=user_id,skill=skill_id,correct=correct --out out/elo\n  npx mastery models register mastery-elo --dir out/elo --data-file train.csv --metrics '{"auc":0.74}' --tag baseline\n`,
    )
    .action(
      async (
        name: string,
        opts: StoreOptions & {
          dir: string;
          metrics?: string;
          params?: string;
          dataFile?: string;
          dataFrom?: string;
          dataTo?: string;
          featureSchemaHash?: string;
          parent?: string;
          tag?: string[];
          description?: string;
          actor?: string;
          holdout?: string;
          columns?: string;
          sep?: string;
        },
      ) => {
        if ((opts.holdout === undefined) !== (opts.columns === undefined))
          throw new CliError(
            "--holdout and --columns go together: pass both to record holdout metrics, or neither",
          );
        const data: DataWindow = opts.dataFile ? dataFileWindow(opts.dataFile) : {};
        for (const [flag, value] of [
          ["--data-from", opts.dataFrom],
          ["--data-to", opts.dataTo],
        ] as const) {
          if (value !== undefined && Number.isNaN(Date.parse(value)))
            throw new CliError(`${flag} must be an ISO 8601 date (got "${value}")`);
        }
        if (opts.dataFrom) data.from = new Date(opts.dataFrom).toISOString();
        if (opts.dataTo) data.to = new Date(opts.dataTo).toISOString();
        let metrics: { [key: string]: number } | undefined;
        if (opts.metrics !== undefined) {
          metrics = {};
          for (const [k, v] of Object.entries(parseJsonOption(opts.metrics, "--metrics"))) {
            if (typeof v !== "number")
              throw new CliError(`--metrics: "${k}" must be a number (got ${JSON.stringify(v)})`);
            metrics[k] = v;
          }
        }
        if (opts.holdout !== undefined && opts.columns !== undefined) {
          const holdout = loadResponses(opts.holdout, parseResponseColumns(opts.columns), opts.sep);
          metrics = { ...registryMetrics(evaluateModel(loadModel(opts.dir), holdout)), ...metrics };
        }
        const v = await withRegistry(opts, (r) =>
          r.register({
            name,
            dir: opts.dir,
            data,
            actor: actorName(opts.actor),
            tags: opts.tag ?? [],
            ...(metrics !== undefined ? { metrics } : {}),
            ...(opts.params !== undefined ? { params: parseJsonOption(opts.params, "--params") } : {}),
            ...(opts.featureSchemaHash !== undefined ? { featureSchemaHash: opts.featureSchemaHash } : {}),
            ...(opts.parent !== undefined ? { parent: opts.parent } : {}),
            ...(opts.description !== undefined ? { description: opts.description } : {}),
          }),
        );
        out(
          opts.json,
          v,
          () =>
            `registered ${formatModelVersion(v.name, v.version)} (${v.kind}, ${v.artifacts.length} files)`,
        );
      },
    );

  storeOptions(models.command("alias"))
    .description(
      "Point an alias (challenger, shadow, ...) of NAME at VERSION, atomically, recorded in alias_history",
    )
    .argument("<name>")
    .argument("<alias>")
    .argument("<version>")
    .option("--reason <text>", "why", "manual move")
    .option("--actor <who>", "who moves it (default $USER)")
    .addHelpText(
      "after",
      `\nExample:\n  npx mastery models alias mastery-elo challenger 3 --reason "retrained on March data"\n`,
    )
    .action(
      async (
        name: string,
        alias: string,
        version: string,
        opts: StoreOptions & { reason: string; actor?: string },
      ) => {
        if (alias === "champion")
          throw new CliError(
            "use `mastery models promote NAME --challenger VERSION` (gated) to move champion",
          );
        const e = await withRegistry(opts, (r) =>
          r.setAlias(name, alias, versionNumber(version, "VERSION"), {
            actor: actorName(opts.actor),
            reason: opts.reason,
          }),
        );
        out(opts.json, e, () => `${name}@${alias}: ${e.fromVersion ?? "-"} -> ${e.toVersion}`);
      },
    );

  rowReadingOptions(
    storeOptions(models.command("promote"))
      .description(
        "Evaluate champion and challenger on a frozen holdout (training/evaluate.ts) and move champion to the challenger only if the promotion gate passes",
      )
      .argument("<name>")
      .requiredOption("--challenger <version>", "version to promote")
      .requiredOption("--holdout <file>", "frozen holdout response log (CSV/TSV)")
      .requiredOption(
        "--columns <spec>",
        "column roles: user=COL,skill=COL,correct=COL[,item=COL][,order=COL][,time=COL] (time: epoch s/ms or ISO; adds day-window features to gbt/mlp/blend)",
      ),
  )
    .option(
      "--group-columns <cols>",
      "holdout columns whose groups must not get worse calibration, e.g. school_id,grade",
    )
    .option("--min-auc-gain <x>", "m_auc: required AUC gain", String(DEFAULT_GATE.minAucGain))
    .option(
      "--min-logloss-gain <x>",
      "m_ll: required log-loss reduction",
      String(DEFAULT_GATE.minLoglossGain),
    )
    .option("--max-ece-increase <x>", "m_ece: allowed ECE increase", String(DEFAULT_GATE.maxEceIncrease))
    .option(
      "--max-group-ece-increase <x>",
      "allowed ECE increase in any group",
      String(DEFAULT_GATE.maxGroupEceIncrease),
    )
    .option(
      "--min-group-size <n>",
      "groups with fewer holdout rows are skipped (and reported)",
      String(DEFAULT_GATE.minGroupSize),
    )
    .option("--force", "promote even if the gate fails (recorded as forced, with the failing decision)")
    .option("--reason <text>", "reason recorded in alias_history (default: the gate summary)")
    .option("--actor <who>", "who promotes (default $USER)")
    .addHelpText(
      "after",
      `\nExample:\n  npx mastery models promote mastery-elo --challenger 3 --holdout holdout.csv \\\n    --columns user=user_id,skill=skill_id,correct=correct,item=item_id --group-columns school_id\n`,
    )
    .action(
      async (
        name: string,
        opts: StoreOptions & {
          challenger: string;
          holdout: string;
          columns: string;
          sep?: string;
          groupColumns?: string;
          minAucGain: string;
          minLoglossGain: string;
          maxEceIncrease: string;
          maxGroupEceIncrease: string;
          minGroupSize: string;
          force?: boolean;
          reason?: string;
          actor?: string;
        } & RowOptions,
      ) => {
        const gate: GateConfig = {
          ...DEFAULT_GATE,
          minAucGain: numberOption(opts.minAucGain, "--min-auc-gain"),
          minLoglossGain: numberOption(opts.minLoglossGain, "--min-logloss-gain"),
          maxEceIncrease: numberOption(opts.maxEceIncrease, "--max-ece-increase"),
          maxGroupEceIncrease: numberOption(opts.maxGroupEceIncrease, "--max-group-ece-increase"),
          minGroupSize: parseIntOption(opts.minGroupSize, "--min-group-size", 1),
        };
        const progress = new Progress("promote", 4);
        const res = await withRegistry(opts, (r) =>
          promoteWithGate(r, {
            name,
            challenger: versionNumber(opts.challenger, "--challenger"),
            holdout: opts.holdout,
            columns: parseResponseColumns(opts.columns),
            groupColumns: opts.groupColumns ? opts.groupColumns.split(",").map((s) => s.trim()) : [],
            gate,
            force: opts.force === true,
            actor: actorName(opts.actor),
            ...(opts.sep !== undefined ? { sep: opts.sep } : {}),
            ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
            onStage: (_s, done, total) => progress.set((done / total) * 4),
            read: rowReading(opts),
          }),
        );
        progress.finish(res.decision.pass ? "gate passed" : "gate failed");
        out(opts.json, res, () =>
          [
            `${name}: challenger ${res.challenger} vs champion ${res.champion ?? "(none)"}`,
            ...res.decision.checks.map((c) => `  [${c.pass ? "pass" : "FAIL"}] ${c.name}: ${c.reason}`),
            ...res.decision.skippedGroups.map(
              (g) => `  [skip] ${g.column}=${g.group}: ${g.n} rows < ${gate.minGroupSize}`,
            ),
            res.decision.summary,
            res.promoted
              ? `champion -> ${res.challenger}${res.forced ? " (FORCED past the gate; recorded)" : ""}`
              : "champion unchanged (use --force to override; it is recorded)",
          ].join("\n"),
        );
        if (!res.promoted) process.exitCode = 2;
      },
    );

  storeOptions(models.command("compare"))
    .description(
      "Compare two versions of NAME: the delta of every recorded metric (auc, rmse, logloss, ece, n) and the promotion gate's verdict of B (challenger) over A (champion); with --holdout both are scored on it and the full gate runs",
    )
    .argument("<name>")
    .argument("<a>", "version A (the champion side), a number or an alias")
    .argument("<b>", "version B (the challenger side), a number or an alias")
    .option(
      "--holdout <file>",
      "score both on this response log and run the full gate (else: recorded metrics)",
    )
    .option(
      "--columns <spec>",
      "column roles of --holdout: user=COL,skill=COL,correct=COL[,item=COL][,order=COL]",
    )
    .option("--sep <sep>", "field separator of --holdout")
    .addHelpText(
      "after",
      "\nExample:\n  npx mastery models compare mastery 1 2\n  npx mastery models compare mastery champion 3 --holdout holdout.csv --columns user=u,skill=s,correct=c\n",
    )
    .action(
      async (
        name: string,
        a: string,
        b: string,
        opts: StoreOptions & { holdout?: string; columns?: string; sep?: string },
      ) => {
        if ((opts.holdout === undefined) !== (opts.columns === undefined))
          throw new CliError(
            "--holdout and --columns go together: pass both, or neither to compare recorded metrics",
          );
        const res = await withRegistry(opts, async (r) => {
          const va = await r.resolve(`${name}@${a}`);
          const vb = await r.resolve(`${name}@${b}`);
          const keys = [...new Set([...Object.keys(va.metrics), ...Object.keys(vb.metrics)])].sort();
          const deltas = keys.map((k) => ({
            metric: k,
            a: va.metrics[k] ?? null,
            b: vb.metrics[k] ?? null,
            delta:
              va.metrics[k] !== undefined && vb.metrics[k] !== undefined
                ? vb.metrics[k]! - va.metrics[k]!
                : null,
          }));
          let verdict: {
            pass: boolean;
            summary: string;
            checks: { name: string; pass: boolean; reason: string }[];
          };
          if (opts.holdout !== undefined && opts.columns !== undefined) {
            const log = loadResponses(opts.holdout, parseResponseColumns(opts.columns), opts.sep);
            const { mkdtempSync, rmSync } = await import("node:fs");
            const { tmpdir } = await import("node:os");
            const { join } = await import("node:path");
            const work = mkdtempSync(join(tmpdir(), "mastery-compare-"));
            try {
              const pa = loadModel(await r.materialize(name, va.version, join(work, "a"))).predictLog(log);
              const pb = loadModel(await r.materialize(name, vb.version, join(work, "b"))).predictLog(log);
              const d = promotionGate({ y: log.correct, champion: pa, challenger: pb });
              verdict = { pass: d.pass, summary: d.summary, checks: d.checks };
            } finally {
              rmSync(work, { recursive: true, force: true });
            }
          } else verdict = recordedVerdict(va.metrics, vb.metrics, DEFAULT_GATE);
          return {
            a: formatModelVersion(name, va.version),
            b: formatModelVersion(name, vb.version),
            deltas,
            verdict,
          };
        });
        const n = (x: number | null): string => (x === null ? "-" : String(Number(x.toFixed(4))));
        out(opts.json, res, () =>
          [
            `${res.b} vs ${res.a}`,
            `${"metric".padEnd(10)} ${"A".padStart(10)} ${"B".padStart(10)} ${"B - A".padStart(10)}`,
            ...res.deltas.map(
              (d) =>
                `${d.metric.padEnd(10)} ${n(d.a).padStart(10)} ${n(d.b).padStart(10)} ${((d.delta !== null && d.delta >= 0 ? "+" : "") + n(d.delta)).padStart(10)}`,
            ),
            ...res.verdict.checks.map((c) => `  [${c.pass ? "pass" : "FAIL"}] ${c.name}: ${c.reason}`),
            `gate: ${res.verdict.summary}`,
          ].join("\n"),
        );
      },
    );

  storeOptions(models.command("rollback"))
    .description("Restore the previous champion of NAME (from alias_history) in one call")
    .argument("<name>")
    .option("--alias <alias>", "alias to roll back", "champion")
    .option("--reason <text>", "why (recorded)")
    .option("--actor <who>", "who rolls back (default $USER)")
    .addHelpText(
      "after",
      `\nExample:\n  npx mastery models rollback mastery-elo --reason "alerts spiked after promotion"\n`,
    )
    .action(async (name: string, opts: StoreOptions & { alias: string; reason?: string; actor?: string }) => {
      const e = await withRegistry(opts, (r) =>
        r.rollback(name, {
          actor: actorName(opts.actor),
          alias: opts.alias,
          ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
        }),
      );
      out(opts.json, e, () => `${name}@${opts.alias}: ${e.fromVersion} -> ${e.toVersion} (rollback)`);
    });

  storeOptions(models.command("delete"))
    .description(
      "Delete a version and its artifact files not shared with another version; refused while an alias points at it",
    )
    .argument("<name>")
    .argument("<version>")
    .addHelpText("after", `\nExample:\n  npx mastery models delete mastery-elo 2\n`)
    .action(async (name: string, version: string, opts: StoreOptions) => {
      const res = await withRegistry(opts, (r) => r.delete(name, versionNumber(version, "VERSION")));
      out(
        opts.json,
        res,
        () =>
          `deleted ${name}@${version}: removed ${res.removedBlobs.length} artifact blob(s), kept ${res.keptBlobs.length} shared with other versions`,
      );
    });

  storeOptions(models.command("lineage"))
    .description(
      "Which data window, feature-schema hash, code commit and parent produced a model version, or the scores served to a student",
    )
    .argument(
      "[ref]",
      "NAME@VERSION | NAME@ALIAS | a student_mastery.model_version (e.g. sha256:0123abcd...)",
    )
    .option(
      "--student <key>",
      "instead of REF: lineage of every score in student_mastery for this student_key",
    )
    .option("--topic <id>", "with --student: only this topic")
    .addHelpText(
      "after",
      `\nExamples:\n  npx mastery models lineage mastery-elo@champion\n  npx mastery models lineage --student 7f3a... --topic frac-add --json\n`,
    )
    .action(async (ref: string | undefined, opts: StoreOptions & { student?: string; topic?: string }) => {
      if (opts.student !== undefined) {
        const student = opts.student;
        const rows = await withRegistry(opts, (r) => r.lineageOfScores(student, opts.topic));
        out(opts.json, rows, () =>
          rows.length === 0
            ? `no student_mastery rows for ${student}`
            : rows
                .map((s) =>
                  s.lineage
                    ? `${s.topicId} [${s.scoreSource}] ${s.modelVersion} -> ${formatModelVersion(s.lineage.name, s.lineage.version)}: data ${describeData(s.lineage.data)}; schema ${s.lineage.featureSchemaHash}; commit ${s.lineage.codeCommit}; parent ${s.lineage.parent ? formatModelVersion(s.lineage.parent.name, s.lineage.parent.version) : "-"}`
                    : `${s.topicId} [${s.scoreSource}] ${s.modelVersion}: no lineage (${s.note})`,
                )
                .join("\n"),
        );
        return;
      }
      if (ref === undefined) throw new CliError("give REF (e.g. mastery-elo@3) or --student KEY");
      const l = await withRegistry(opts, (r) => r.lineage(ref));
      out(opts.json, l, () =>
        [
          `${formatModelVersion(l.name, l.version)} (${l.kind}; matched by ${l.matchedBy})`,
          `data:           ${describeData(l.data)}`,
          `feature schema: ${l.featureSchemaHash}`,
          `code commit:    ${l.codeCommit}`,
          `created:        ${l.createdAt} by ${l.createdBy}`,
          `ancestors:      ${l.ancestors.map((a) => `${formatModelVersion(a.name, a.version)}${a.exists ? "" : " (deleted)"}`).join(" <- ") || "-"}`,
        ].join("\n"),
      );
    });

  storeOptions(models.command("tag"))
    .description("Add or remove tags of a version")
    .argument("<name>")
    .argument("<version>")
    .option("--add <tag...>", "tags to add")
    .option("--remove <tag...>", "tags to remove")
    .addHelpText(
      "after",
      `\nExample:\n  npx mastery models tag mastery-elo 3 --add candidate --remove baseline\n`,
    )
    .action(
      async (name: string, version: string, opts: StoreOptions & { add?: string[]; remove?: string[] }) => {
        if (!opts.add?.length && !opts.remove?.length)
          throw new CliError("give --add TAG... and/or --remove TAG...");
        const v = await withRegistry(opts, (r) =>
          r.tag(name, versionNumber(version, "VERSION"), opts.add ?? [], opts.remove ?? []),
        );
        out(opts.json, v, () => `${formatModelVersion(v.name, v.version)} tags: ${v.tags.join(", ") || "-"}`);
      },
    );
}

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Registry } from "../registry/registry.ts";
import { type AliasHistoryEntry, type Json, RegistryError } from "../registry/store.ts";
import { loadPredictor, type OnlinePredictor } from "./evaluate.ts";
import {
  DEFAULT_GATE,
  firstChampionDecision,
  type GateConfig,
  type GroupColumn,
  promotionGate,
} from "./gate.ts";
import {
  detectSeparator,
  loadResponses,
  type ReadOptions,
  type ResponseColumns,
  type ResponseLog,
} from "./responses.ts";

export interface PromoteOptions {
  name: string;
  challenger: number;
  /** Frozen holdout response log (CSV/TSV) both models are scored on. */
  holdout: string;
  columns: ResponseColumns;
  sep?: string;
  /** Holdout columns to check group calibration on (e.g. ["school_id", "grade"]). */
  groupColumns?: string[];
  gate?: GateConfig;
  /** Promote even if the gate fails; the move is recorded with forced = true and the failing decision. */
  force?: boolean;
  actor: string;
  reason?: string;
  onStage?: (stage: string, done: number, total: number) => void;
  /** Skip policy and row report for the holdout file. */
  read?: ReadOptions;
  /** Loads a materialized model directory (default: the kind table, training/kinds.ts). */
  loadModel?: (dir: string) => OnlinePredictor;
}

export interface PromoteResult {
  name: string;
  challenger: number;
  champion: number | null;
  promoted: boolean;
  forced: boolean;
  decision: ReturnType<typeof promotionGate> | ReturnType<typeof firstChampionDecision>;
  entry: AliasHistoryEntry | null;
}

/**
 * Group labels per log row for each group column. The value is the student's (first row's) value
 * in the file, since loadResponses regroups rows by student; a student counts in one school/grade.
 */
export function holdoutGroups(
  path: string,
  log: ResponseLog,
  userColumn: string,
  groupColumns: string[],
  sep?: string,
): GroupColumn[] {
  if (groupColumns.length === 0) return [];
  const text = readFileSync(path, "utf8");
  const lines = text.split(/\r?\n/);
  const header = lines[0] ?? "";
  const separator = detectSeparator(header, sep);
  const names = header.split(separator).map((h) => h.trim());
  const iUser = names.indexOf(userColumn);
  const idx = groupColumns.map((c) => {
    const i = names.indexOf(c);
    if (i < 0)
      throw new RegistryError(
        "GROUP_COLUMN",
        `--group-columns: column "${c}" not found in ${path}; the header has: ${names.join(", ")}`,
      );
    return i;
  });
  const perUser = groupColumns.map(() => new Map<string, string>());
  for (let l = 1; l < lines.length; l++) {
    const line = lines[l]!;
    if (line === "") continue;
    const f = line.split(separator);
    const user = (f[iUser] ?? "").trim();
    for (let c = 0; c < idx.length; c++) {
      const m = perUser[c]!;
      if (!m.has(user)) m.set(user, (f[idx[c]!] ?? "").trim() || "(empty)");
    }
  }
  return groupColumns.map((column, c) => {
    const values = new Array<string>(log.n);
    for (let k = 0; k < log.n; k++) values[k] = perUser[c]!.get(log.userNames[log.user[k]!]!) ?? "(unknown)";
    return { column, values };
  });
}

/**
 * Scores champion and challenger on the holdout with training/evaluate.ts (online next-response
 * predictions), applies the promotion gate, and moves `champion` to the challenger when it passes
 * (or when forced). Either way the decision is returned; a move records it in alias_history.
 */
export async function promoteWithGate(registry: Registry, opts: PromoteOptions): Promise<PromoteResult> {
  const stage = opts.onStage ?? (() => {});
  const gate = opts.gate ?? DEFAULT_GATE;
  const challengerV = await registry.store.getVersion(opts.name, opts.challenger);
  if (challengerV === undefined)
    throw new RegistryError(
      "NO_VERSION",
      `${opts.name}@${opts.challenger} is not registered (see \`mastery models list --name ${opts.name}\`)`,
    );
  const champion = (await registry.store.aliasTarget(opts.name, "champion")) ?? null;
  if (champion === opts.challenger)
    throw new RegistryError("ALREADY_CHAMPION", `${opts.name}@${opts.challenger} is already the champion`);

  const total = champion === null ? 3 : 4;
  stage("load holdout", 0, total);
  const log = loadResponses(opts.holdout, opts.columns, opts.sep, opts.read);
  const groups = holdoutGroups(opts.holdout, log, opts.columns.user, opts.groupColumns ?? [], opts.sep);
  const load = opts.loadModel ?? loadPredictor;
  const work = mkdtempSync(join(tmpdir(), "mastery-promote-"));
  try {
    stage("score challenger", 1, total);
    const pChallenger = load(
      await registry.materialize(opts.name, opts.challenger, join(work, "challenger")),
    ).predictLog(log);
    let decision: PromoteResult["decision"];
    if (champion === null) {
      decision = firstChampionDecision(log.correct, pChallenger, gate);
    } else {
      stage("score champion", 2, total);
      const pChampion = load(
        await registry.materialize(opts.name, champion, join(work, "champion")),
      ).predictLog(log);
      stage("gate", 3, total);
      decision = promotionGate(
        { y: log.correct, champion: pChampion, challenger: pChallenger, groups },
        gate,
      );
    }
    const forced = !decision.pass && opts.force === true;
    let entry: AliasHistoryEntry | null = null;
    if (decision.pass || forced) {
      entry = await registry.setAlias(opts.name, "champion", opts.challenger, {
        actor: opts.actor,
        action: "promote",
        forced,
        reason:
          opts.reason ?? (forced ? `FORCED past a failing gate: ${decision.summary}` : decision.summary),
        gate: JSON.parse(JSON.stringify({ holdout: opts.holdout, rows: log.n, ...decision })) as Json,
      });
    }
    stage("done", total, total);
    return {
      name: opts.name,
      challenger: opts.challenger,
      champion,
      promoted: entry !== null,
      forced,
      decision,
      entry,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

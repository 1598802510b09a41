import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ResponseColumns, ResponseLog } from "./responses.ts";

/** Share of rows with never-seen skills (or items) above which evaluating says so. */
export const UNSEEN_WARN_FRACTION = 0.5;

interface Vocabulary {
  skills?: Set<string>;
  items?: Set<string>;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The skills and items a model.json was fitted on: the first "skills" / "items" maps (name -> fitted
 * parameters) found in it, at any depth (BKT and Elo hold them at the top; GBT, MLP and blend inside their
 * context's BKT and Elo).
 */
export function modelVocabulary(json: unknown): Vocabulary {
  const out: Vocabulary = {};
  const queue: unknown[] = [json];
  while (queue.length > 0 && (out.skills === undefined || out.items === undefined)) {
    const v = queue.shift();
    if (!isRecord(v)) continue;
    for (const [key, child] of Object.entries(v)) {
      if (!isRecord(child)) continue;
      const values = Object.values(child);
      const map = values.length > 0 && values.every(isRecord);
      if (key === "skills" && map && out.skills === undefined) out.skills = new Set(Object.keys(child));
      else if (key === "items" && map && out.items === undefined) out.items = new Set(Object.keys(child));
      else queue.push(child);
    }
  }
  return out;
}

function unseen(
  names: readonly string[],
  ids: Int32Array,
  n: number,
  known: Set<string>,
): { rows: number; names: string[] } {
  const isNew = names.map((name) => !known.has(name));
  let rows = 0;
  for (let k = 0; k < n; k++) if (isNew[ids[k]!] === true) rows++;
  return { rows, names: names.filter((_, i) => isNew[i]) };
}

const pct = (x: number): string => `${(100 * x).toFixed(0)}%`;

/**
 * Warnings for evaluating `modelJson` on `log`: a column the model was fitted with (item) is missing from
 * `columns`, or most rows' skills / items were never seen in training (their predictions fall back to the
 * model's defaults, so the metrics say little about the fitted parameters).
 */
export function coverageWarnings(modelJson: unknown, log: ResponseLog, columns: ResponseColumns): string[] {
  const vocab = modelVocabulary(modelJson);
  const warnings: string[] = [];
  if (vocab.items !== undefined && vocab.items.size > 0 && columns.item === undefined) {
    warnings.push(
      `the model was trained with an item column (${vocab.items.size} items) but --columns has no item=COL: ` +
        "its item parameters are unused; add item=COL (the same column as in training)",
    );
  }
  const check = (what: string, role: string, names: string[], ids: Int32Array, known: Set<string>) => {
    const u = unseen(names, ids, log.n, known);
    if (log.n > 0 && u.rows / log.n > UNSEEN_WARN_FRACTION) {
      warnings.push(
        `${pct(u.rows / log.n)} of the rows (${u.names.length} of ${names.length} ${what}, e.g. ${u.names
          .slice(0, 3)
          .map((s) => JSON.stringify(s))
          .join(", ")}) have ${what} the model never saw in training: they get its defaults, not fitted ` +
          `parameters; check that ${role}= names the same column as in training`,
      );
    }
  };
  if (vocab.skills !== undefined) check("skills", "skill", log.skillNames, log.skill, vocab.skills);
  if (vocab.items !== undefined && vocab.items.size > 0 && columns.item !== undefined)
    check("items", "item", log.itemNames, log.item, vocab.items);
  return warnings;
}

/** coverageWarnings for the model.json in `modelDir` (unreadable: none; loadPredictor reports that). */
export function coverageWarningsForDir(
  modelDir: string,
  log: ResponseLog,
  columns: ResponseColumns,
): string[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(join(modelDir, "model.json"), "utf8"));
  } catch {
    return [];
  }
  return coverageWarnings(json, log, columns);
}

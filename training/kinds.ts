import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bktKind } from "./kinds/bkt.ts";
import { blendKind } from "./kinds/blend.ts";
import { eloKind } from "./kinds/elo.ts";
import { gbtKind } from "./kinds/gbt.ts";
import { mlpKind } from "./kinds/mlp.ts";
import { ruleKind } from "./kinds/rule.ts";
import { type KindModel, ModelJsonError, type ModelKind, ModelKindError } from "./modelKind.ts";

/**
 * THE table of model kinds (training/modelKind.ts is the contract). The CLI (train, evaluate, retrain,
 * models register/compare), the promotion gate, serving and ONNX export look kinds up here; adding a
 * kind is one file under training/kinds/ plus one row below. Importing this module registers nothing.
 */
export const KINDS: readonly ModelKind[] = Object.freeze([
  ruleKind,
  bktKind,
  eloKind,
  gbtKind,
  mlpKind,
  blendKind,
]);

export const KIND_NAMES: readonly string[] = KINDS.map((k) => k.kind);

/** The kind named `name`, or ModelKindError listing the known ones. */
export function kindOf(name: string): ModelKind {
  const k = KINDS.find((x) => x.kind === name);
  if (k === undefined)
    throw new ModelKindError(`unknown model kind "${name}"; known kinds: ${KIND_NAMES.join(", ")}`);
  return k;
}

/** A fitted model from a parsed model.json, dispatching on its "kind" field. */
export function modelFromJson(json: unknown): KindModel {
  const kind =
    typeof json === "object" && json !== null && "kind" in json
      ? (json as { kind: unknown }).kind
      : undefined;
  if (typeof kind !== "string")
    throw new ModelJsonError("model", `no string "kind" field; expected one of: ${KIND_NAMES.join(", ")}`);
  return kindOf(kind).fromJSON(json);
}

/** Reads DIR/model.json; ModelKindError naming the path when it is missing or not JSON. */
export function readModelJson(dir: string): unknown {
  const path = join(dir, "model.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ModelKindError(
      `cannot read ${path} (${(err as Error).message}); pass a directory holding the model.json written by "mastery train"`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelKindError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The fitted model in DIR/model.json. */
export function loadModel(dir: string): KindModel {
  return modelFromJson(readModelJson(dir));
}

/**
 * Reads the trees of an XGBoost model saved as JSON (`booster.save_model("m.json")`, XGBoost >= 1.0) into our
 * TreeEnsemble, so our TreeSHAP and prediction can run on (and be checked against) XGBoost's own models.
 * Parsing only: the caller reads the file. Numerical trees only (no categorical splits, one output group).
 */
import { allocTree, type Tree, type TreeEnsemble, validateTree } from "./treeEnsemble.ts";

export class XgboostModelError extends Error {
  readonly code = "XGBOOST_MODEL";
  override readonly name = "XgboostModelError";
}

function field(obj: unknown, key: string, where: string): unknown {
  if (typeof obj !== "object" || obj === null || !(key in obj)) {
    throw new XgboostModelError(`${where}.${key} is missing; pass the JSON written by booster.save_model()`);
  }
  return (obj as Record<string, unknown>)[key];
}

function numArray(obj: unknown, key: string, where: string): number[] {
  const v = field(obj, key, where);
  if (!Array.isArray(v)) throw new XgboostModelError(`${where}.${key} must be an array`);
  return v.map((x, i) => {
    const n = typeof x === "boolean" ? Number(x) : x;
    if (typeof n !== "number")
      throw new XgboostModelError(`${where}.${key}[${i}] must be a number (got ${x})`);
    return n;
  });
}

/**
 * Margin-space base score. XGBoost stores `base_score` in output space; for logistic objectives the margin is
 * its logit.
 */
function baseMargin(baseScore: number, objective: string): number {
  if (objective === "binary:logistic" || objective === "reg:logistic") {
    return Math.log(baseScore / (1 - baseScore));
  }
  if (objective === "reg:squarederror" || objective === "binary:logitraw" || objective === "reg:linear") {
    return baseScore;
  }
  throw new XgboostModelError(
    `objective ${objective} is not supported; use binary:logistic, binary:logitraw or reg:squarederror`,
  );
}

/**
 * XGBoost compares float32 features with float32 thresholds; thresholds are rounded to float32 here, so a
 * float32-valued input routes exactly as in XGBoost.
 */
export function ensembleFromXgboostJson(json: unknown): TreeEnsemble {
  const learner = field(json, "learner", "model");
  const params = field(learner, "learner_model_param", "learner");
  const nFeatures = Number(field(params, "num_feature", "learner_model_param"));
  const numClass = Number(field(params, "num_class", "learner_model_param"));
  if (numClass > 1)
    throw new XgboostModelError(`num_class ${numClass} > 1 is not supported (one output only)`);
  const objective = String(field(field(learner, "objective", "learner"), "name", "learner.objective"));
  const baseScore = baseMargin(Number(field(params, "base_score", "learner_model_param")), objective);
  const model = field(field(learner, "gradient_booster", "learner"), "model", "learner.gradient_booster");
  const treesJson = field(model, "trees", "gradient_booster.model");
  if (!Array.isArray(treesJson)) throw new XgboostModelError("gradient_booster.model.trees must be an array");
  const trees: Tree[] = treesJson.map((tj: unknown, k: number) => {
    const where = `trees[${k}]`;
    const left = numArray(tj, "left_children", where);
    const right = numArray(tj, "right_children", where);
    const splitIdx = numArray(tj, "split_indices", where);
    const cond = numArray(tj, "split_conditions", where);
    const defLeft = numArray(tj, "default_left", where);
    const hess = numArray(tj, "sum_hessian", where);
    const weights = numArray(tj, "base_weights", where);
    const t = allocTree(left.length);
    for (let i = 0; i < left.length; i++) {
      const isLeaf = left[i] === -1;
      t.left[i] = left[i]!;
      t.right[i] = right[i]!;
      t.cover[i] = hess[i]!;
      if (isLeaf) {
        // For leaves XGBoost stores the leaf output in split_conditions.
        t.value[i] = cond[i]!;
      } else {
        t.feature[i] = splitIdx[i]!;
        t.threshold[i] = Math.fround(cond[i]!);
        t.defaultLeft[i] = defLeft[i] === 0 ? 0 : 1;
        t.value[i] = weights[i]!;
      }
    }
    validateTree(t, nFeatures);
    return t;
  });
  return { trees, baseScore, nFeatures };
}

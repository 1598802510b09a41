import { BUCKETS, bucketOf, fromRanges, hashPoint } from "./buckets.ts";

/** What an arm serves: a registry model by alias (e.g. champion) or by explicit version. */
export type ArmModel = { name: string; alias: string } | { name: string; version: number };

export interface Arm {
  name: string;
  model: ArmModel;
  share: number;
}

/** The part of an experiment assignment needs; nothing per student is stored. */
export interface RoutingDefinition {
  experimentId: string;
  salt: string;
  arms: readonly Arm[];
  /** [start, endExclusive, armIndex] bucket runs (experiments/buckets.ts). */
  allocation: readonly (readonly [number, number, number])[];
}

export interface Assignment {
  experimentId: string;
  arm: string;
  armIndex: number;
  bucket: number;
  /** The registry reference to resolve for scoring, e.g. "mastery-elo@champion" or "mastery-elo@3". */
  modelRef: string;
}

export function armModelRef(m: ArmModel): string {
  return "alias" in m ? `${m.name}@${m.alias}` : `${m.name}@${m.version}`;
}

/**
 * Sticky A/B router: a pure function of (salt, allocation, studentKey), so every server and every
 * restart assigns a student the same arm without a lookup table.
 */
export class ExperimentRouter {
  private readonly owner: Int32Array;

  constructor(readonly def: RoutingDefinition) {
    this.owner = fromRanges(def.allocation);
  }

  assign(studentKey: string): Assignment {
    const bucket = bucketOf(hashPoint(this.def.salt, studentKey));
    const armIndex = this.owner[bucket]!;
    const arm = this.def.arms[armIndex]!;
    return {
      experimentId: this.def.experimentId,
      arm: arm.name,
      armIndex,
      bucket,
      modelRef: armModelRef(arm.model),
    };
  }

  /** Buckets owned per arm (sums to BUCKETS). */
  bucketsPerArm(): number[] {
    const n = new Array<number>(this.def.arms.length).fill(0);
    for (let b = 0; b < BUCKETS; b++) n[this.owner[b]!]! += 1;
    return n;
  }
}

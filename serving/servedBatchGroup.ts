import { type LatentEvent, LatentFilter, type LatentSequence } from "../models/latentFilter.ts";
import { scoreStudentLatent } from "../models/latentStudent.ts";
import type { LatentWideKernel } from "../models/latentWideWasm.ts";
import { ServedMastery, type ServedMasteryJson, servedFromLatent } from "../models/servedMastery.ts";
import { LATENT_SOURCE, latentDecay, latentExplanation } from "./latentScoring.ts";
import { latentExplanationText, servedExplanationText } from "./servedExplanationText.ts";
import { SERVED_SOURCE, servedExplanation } from "./servedRows.ts";
import { writeAllSync } from "./writeAllSync.ts";

/**
 * One group of whole students of the daily batch's served step (serving/servedBatch.ts), as columns: what a
 * scoring thread needs and nothing else (no keys: pairs are named by their pid in temp.served_pairs). Pairs are
 * in pid order (student_key, topic_id), so a student's pairs are consecutive; pair p owns the filter events
 * evStart[p] .. evStart[p + 1] - 1, in replay order (models/learnerState.ts replayOrder). A pair without
 * events has a stored score but nothing before as-of: it is scored at its topic's prior.
 */
export interface ServedGroup {
  id: number;
  pairs: number;
  pid: Float64Array;
  /** Student number (any numbering: only equality between neighbours matters). */
  sid: Float64Array;
  /** Index into the run's topic list. */
  ti: Int32Array;
  evStart: Int32Array;
  /** Per event: time in days, filter kind, graded count and correct amount (models/latentFilter.ts LatentEvent). */
  t: Float64Array;
  kind: Int8Array;
  n: Float64Array;
  k: Float64Array;
}

/** What a scoring thread is given once. */
export interface ServedGroupSetup {
  model: ServedMasteryJson;
  topics: string[];
  /** As-of time in days (models/latentState.ts latentDays). */
  asOfDays: number;
  /** The latent filter's wide kernel (models/latentWideWasm.ts; LatentFilter.useWideKernel). */
  latentKernel: LatentWideKernel;
}

/** Pairs scored by evidence kind ("measured" / "indirect" / "prior"). */
export type EvidenceCounts = Record<string, number>;

export class ServedBatchError extends Error {
  readonly code = "SERVED_BATCH";
  constructor(message: string) {
    super(message);
    this.name = "ServedBatchError";
  }
}

/** Where a scorer's lines go, in order (whole lines, one or more a call). */
export interface ServedLineSink {
  write(text: string): void;
}

/** Bytes of a scoring file's write buffer (ServedLineFile): ~1,000 pairs' lines. */
export const SERVED_LINE_BUFFER = 1 << 20;

/**
 * A scoring file written through one fixed buffer (lean29): each pair's text is encoded into the buffer as it is
 * scored, so no line outlives its pair in the heap. Before, a thread kept a group's lines (~9 MB of strings for
 * 65,536 events) until the group's end, and the young generation's collections copied and promoted them.
 */
export class ServedLineFile implements ServedLineSink {
  private readonly buf = Buffer.allocUnsafe(SERVED_LINE_BUFFER);
  private used = 0;

  constructor(private readonly fd: number) {}

  write(text: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    if (this.used + 3 * text.length > this.buf.length) {
      this.flush();
      if (3 * text.length > this.buf.length) {
        writeAllSync(this.fd, Buffer.from(text, "utf8"));
        return;
      }
    }
    this.used += this.buf.write(text, this.used, "utf8");
  }

  /** Writes what the buffer holds to the file. */
  flush(): void {
    writeAllSync(this.fd, this.buf.subarray(0, this.used));
    this.used = 0;
  }
}

/** A number as the file's text: String(number) round-trips through DuckDB's DOUBLE parser, -0 included. */
const num = (v: number): string => (Object.is(v, -0) ? "-0" : String(v));

/**
 * Scores groups: per student, models/latentStudent.ts scoreStudentLatent (the same estimates as `mastery score
 * served`), then each pair's served estimate (models/servedMastery.ts servedFromLatent) and the two stored rows,
 * as "pid<TAB>source<TAB>score<TAB>explanation" lines. The explanations are those serving/servedScoring.ts
 * stores. Pure apart from the lines it hands to its sink, so it runs the same in a thread or in the caller's.
 */
export class ServedGroupScorer {
  private readonly served: ServedMastery;
  private readonly filter: LatentFilter;
  /** The model's anchor calibration and sd (the same for every pair: built once, not once a pair). */
  private readonly anchor: ReturnType<ServedMastery["anchorCalibration"]>;
  private readonly anchorSd: number;

  constructor(private readonly setup: ServedGroupSetup) {
    this.served = ServedMastery.fromJSON(setup.model);
    const lj = setup.model.latent;
    if (setup.model.servedFrom !== "latent" || lj === undefined)
      throw new ServedBatchError(
        "the batch's served step scores a model served from its latent filter; this one serves from the stack: score it with `mastery score served`",
      );
    this.filter = LatentFilter.fromJSON(lj).useWideKernel(setup.latentKernel);
    this.anchor = this.served.anchorCalibration();
    this.anchorSd = this.served.anchorSd();
  }

  /** Writes the group's lines to `out` (one call per pair: its two lines) and counts its pairs by evidence kind. */
  score(g: ServedGroup, out: ServedLineSink, kinds: EvidenceCounts): void {
    const { topics, asOfDays } = this.setup;
    const f = this.filter;
    const m = this.served;
    const params = f.json.params;
    let p = 0;
    while (p < g.pairs) {
      const sid = g.sid[p]!;
      let end = p + 1;
      while (end < g.pairs && g.sid[end] === sid) end++;
      const seqs: LatentSequence[] = [];
      const seqPair: number[] = [];
      const priorTopics: string[] = [];
      const priorPair: number[] = [];
      for (let q = p; q < end; q++) {
        const topic = topics[g.ti[q]!];
        if (topic === undefined)
          throw new ServedBatchError(`served group ${g.id}: pair ${g.pid[q]} has no topic ${g.ti[q]}`);
        const from = g.evStart[q]!;
        const to = g.evStart[q + 1]!;
        if (to > from) {
          const events: LatentEvent[] = new Array(to - from);
          for (let i = from; i < to; i++)
            events[i - from] = { t: g.t[i]!, kind: g.kind[i]!, n: g.n[i]!, k: g.k[i]! };
          seqs.push({ topic, events });
          seqPair.push(q);
        } else {
          priorTopics.push(topic);
          priorPair.push(q);
        }
      }
      const r = scoreStudentLatent(f, seqs, priorTopics, asOfDays);
      const write = (q: number, est: (typeof r.estimates)[number]): void => {
        const topic = topics[g.ti[q]!]!;
        const e = servedFromLatent(
          est,
          params,
          m.calibration(topic),
          m.json.scale,
          this.anchor,
          this.anchorSd,
        );
        kinds[e.evidence] = (kinds[e.evidence] ?? 0) + 1;
        const pid = num(g.pid[q]!);
        const decay = latentDecay(params, est);
        // lean29: the texts straight from the estimates (JSON.stringify of the built explanations, the same text).
        const served = servedExplanationText(e) ?? JSON.stringify(servedExplanation(e));
        const latent = latentExplanationText(est, decay) ?? JSON.stringify(latentExplanation(est, decay));
        out.write(
          `${pid}\t${SERVED_SOURCE}\t${num(e.score)}\t${served}\n${pid}\t${LATENT_SOURCE}\t${num(est.score)}\t${latent}\n`,
        );
      };
      for (let i = 0; i < seqPair.length; i++) write(seqPair[i]!, r.estimates[i]!);
      for (let i = 0; i < priorPair.length; i++) write(priorPair[i]!, r.priors[i]!);
      p = end;
    }
  }
}

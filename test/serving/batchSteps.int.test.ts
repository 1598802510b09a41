import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BATCH_DIGEST_QUERIES, tableDigests } from "../../bench/bktEloDigest.ts";
import { Pseudonymizer } from "../../features/pseudonymize.ts";
import { generateSynthetic } from "../../features/synthetic/generate.ts";
import { type OverlapSetting, runBatchSteps } from "../../serving/batchSteps.ts";
import { resolveModels, scoreBktElo } from "../../serving/learnerState.ts";
import { type PipelineResult, runPipeline } from "../../serving/pipeline.ts";
import { DuckStore } from "../../storage/duckdb.ts";
import { baseDuplicateKeys } from "../../storage/servingTables.ts";

// One generated school, batched into fresh stores in sequence and with the steps overlapped, twice each (the
// second run is a full rerun over the stored rows: the rule step swaps in a new student_mastery base and the
// BKT/Elo step updates the stored rows, the writes that must not race).
let work: string;
const dataDir = () => join(work, "data");

/** "rows/xor of row hashes" per table the batch writes, the wall-clock columns left out. */
const digests = (store: DuckStore): Promise<Record<string, string>> =>
  tableDigests(store, BATCH_DIGEST_QUERIES);

async function batchTwice(
  name: string,
  overlap: OverlapSetting,
): Promise<{
  runs: PipelineResult[];
  first: Record<string, string>;
  second: Record<string, string>;
  threadsBefore: number;
  threadsAfter: number[];
}> {
  const store = await DuckStore.open(join(work, name, "mastery.duckdb"), { encryption: null });
  const threads = async () =>
    Number((await store.one<{ t: bigint | number }>("SELECT current_setting('threads') AS t"))?.t);
  try {
    const threadsBefore = await threads();
    const threadsAfter: number[] = [];
    const runs: PipelineResult[] = [];
    // The rerun fits its BKT/Elo models with another seed, so the BKT/Elo step moves every stored row it owns
    // while the rule step rewrites the base around them: a rewrite from before that step's commit would drop them.
    const once = async (seed: number) => {
      runs.push(
        await runPipeline({
          store,
          pseudonymizer: new Pseudonymizer("batch-steps-int-key-0123456789"),
          dataDir: dataDir(),
          models: (s) => resolveModels(s, { seed }),
          bktEloFull: true,
          overlap,
        }),
      );
      threadsAfter.push(await threads());
      // The base holds each key once (it has no primary key: the steps' writes keep that promise).
      expect(await baseDuplicateKeys(store, "student_mastery")).toEqual([]);
    };
    await once(0);
    const first = await digests(store);
    await once(1);
    return { runs, first, second: await digests(store), threadsBefore, threadsAfter };
  } finally {
    store.close();
    await store.whenClosed();
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "batch-steps-int-"));
  await generateSynthetic({
    students: 120,
    topics: 12,
    days: 21,
    seed: 11,
    start: "2026-09-01",
    eventsPerDay: 3.2,
    truthEvery: 7,
    outDir: dataDir(),
    workers: 0,
  });
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the batch's steps overlapped", () => {
  it("store exactly the rows the sequential batch stores, on a first run and on a full rerun", {
    timeout: 240_000,
  }, async () => {
    const seq = await batchTwice("sequential", false);
    const over = await batchTwice("overlapped", true);
    const writes = await batchTwice("writes", "writes");
    expect(seq.runs.map((r) => r.scoring.schedule)).toEqual(["sequence", "sequence"]);
    expect(over.runs.map((r) => r.scoring.schedule)).toEqual(["steps", "steps"]);
    expect(writes.runs.map((r) => r.scoring.schedule)).toEqual(["writes", "writes"]);
    expect(over.runs.map((r) => r.scoring.overlapped)).toEqual([true, true]);
    // The batch wrote something of every kind (a digest of empty tables would match trivially).
    for (const [table, d] of Object.entries(seq.first))
      expect(Number(d.split("/")[0]), `${table} rows`).toBeGreaterThan(0);
    expect(seq.runs[0]!.ruleScores).toBeGreaterThan(0);
    expect(seq.runs[0]!.bktEloKeys).toBeGreaterThan(0);
    expect(over.first).toEqual(seq.first);
    expect(over.second).toEqual(seq.second);
    expect(writes.first).toEqual(seq.first);
    expect(writes.second).toEqual(seq.second);
    // DuckDB's threads setting (database-wide) ends where it started: the rule writes' and the BKT/Elo writes'
    // one-thread switches took turns.
    for (const b of [seq, over, writes]) expect(b.threadsAfter).toEqual([b.threadsBefore, b.threadsBefore]);
    // Each step's own span is reported, and the steps together took at most the sum of their spans.
    const r = over.runs[0]!;
    for (const run of [r, writes.runs[0]!]) {
      for (const step of ["features", "score rules", "score bkt-elo"] as const)
        expect(run.millis[step]).toBeGreaterThan(0);
      expect(run.scoring.millis).toBeLessThanOrEqual(
        run.millis.features + run.millis["score rules"] + run.millis["score bkt-elo"] + 50,
      );
    }
  });

  it.each([
    [true, "failed"],
    ["writes", "failed-writes"],
  ] as const)(
    "a failed rule step stops the BKT/Elo step before it writes, and the failure is thrown (overlap %s)",
    {
      timeout: 120_000,
    },
    async (overlap, dir) => {
      const store = await DuckStore.open(join(work, dir, "mastery.duckdb"), { encryption: null });
      try {
        await runPipeline({
          store,
          pseudonymizer: new Pseudonymizer("batch-steps-int-key-0123456789"),
          dataDir: dataDir(),
          skip: ["score bkt-elo"],
          overlap: false,
        });
        const models = await resolveModels(store, { seed: 0 });
        let folded = false;
        await expect(
          runBatchSteps(store, {
            overlap,
            // It fails in its writes ("writes" starts BKT/Elo there).
            rules: async (_s, writesBegin) => {
              writesBegin();
              await new Promise((ok) => setTimeout(ok, 50));
              throw new Error("rule step failed on purpose");
            },
            bktElo: (s, beforeWrite) =>
              scoreBktElo(s, models, {
                full: true,
                onPhase: (p) => {
                  if (p === "fold") folded = true;
                },
                beforeWrite,
              }),
          }),
        ).rejects.toThrow("rule step failed on purpose");
        expect(folded).toBe(true);
        const n = await store.one<{ n: bigint }>("SELECT count(*) AS n FROM learner_state");
        expect(Number(n?.n)).toBe(0);
        const bkt = await store.one<{ n: bigint }>(
          "SELECT count(*) AS n FROM student_mastery WHERE score_source IN ('bkt', 'elo')",
        );
        expect(Number(bkt?.n)).toBe(0);
      } finally {
        store.close();
        await store.whenClosed();
      }
    },
  );
});

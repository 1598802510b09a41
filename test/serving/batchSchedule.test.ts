import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { batchSchedule, OVERLAP_MAX_EVENTS, runBatchSteps } from "../../serving/batchSteps.ts";
import { DuckStore } from "../../storage/duckdb.ts";

// The "writes" schedule's order, with steps that record what they do and wait for each other's signals (the
// real steps' rows are checked in test/serving/batchSteps.int.test.ts). A step's session is a DuckDB
// connection of its own on one in-memory database.
let store: DuckStore;
beforeEach(async () => {
  store = await DuckStore.open(":memory:");
});
afterEach(async () => {
  store.close();
  await store.whenClosed();
});

const tick = (ms = 5) => new Promise<void>((ok) => setTimeout(ok, ms));

/** A log of what the steps did, in order, and how many ran at once at most. */
function recorder() {
  const log: string[] = [];
  let running = 0;
  let most = 0;
  return {
    log,
    most: () => most,
    async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
      log.push(`${name} start`);
      most = Math.max(most, ++running);
      try {
        return await fn();
      } finally {
        running--;
        log.push(`${name} end`);
      }
    },
  };
}

describe("runBatchSteps' writes schedule", () => {
  it("starts BKT/Elo when the rule writes begin, features when the fold is done, and BKT/Elo writes after the rule commit", async () => {
    const r = recorder();
    const out = await runBatchSteps(store, {
      overlap: "writes",
      features: () =>
        r.run("features", async () => {
          await tick();
          return "f";
        }),
      rules: (_s, writesBegin) =>
        r.run("rules", async () => {
          await tick(20);
          r.log.push("rules writes");
          writesBegin();
          writesBegin(); // a second call changes nothing
          await tick(40);
          r.log.push("rules commit");
          return "r";
        }),
      bktElo: (_s, beforeWrite) =>
        r.run("bkt", async () => {
          await tick(5);
          r.log.push("bkt folded");
          await beforeWrite();
          r.log.push("bkt writes");
          await tick(5);
          return "b";
        }),
    });
    expect(out).toMatchObject({
      features: "f",
      rules: "r",
      bktElo: "b",
      overlapped: true,
      schedule: "writes",
    });
    const at = (e: string) => r.log.indexOf(e);
    expect(at("rules start")).toBe(0);
    expect(at("bkt start")).toBeGreaterThan(at("rules writes"));
    expect(at("features start")).toBeGreaterThan(at("bkt folded"));
    expect(at("bkt writes")).toBeGreaterThan(at("rules end"));
    expect(r.most()).toBeLessThanOrEqual(3);
    // The spans say so too: BKT/Elo started after the rule step, features after BKT/Elo.
    const { spans } = out;
    expect(spans["score bkt-elo"]!.startMs).toBeGreaterThanOrEqual(spans["score rules"]!.startMs + 15);
    expect(spans.features!.startMs).toBeGreaterThan(spans["score bkt-elo"]!.startMs);
  });

  it("with no BKT/Elo step, starts features when the rule writes begin", async () => {
    const r = recorder();
    await runBatchSteps(store, {
      overlap: "writes",
      features: () => r.run("features", async () => "f"),
      rules: (_s, writesBegin) =>
        r.run("rules", async () => {
          await tick(10);
          r.log.push("rules writes");
          writesBegin();
          await tick(20);
          return "r";
        }),
    });
    expect(r.log.indexOf("features start")).toBeGreaterThan(r.log.indexOf("rules writes"));
    expect(r.log.indexOf("features start")).toBeLessThan(r.log.indexOf("rules end"));
  });

  it("a rule step that never signals its writes is waited for whole before BKT/Elo starts", async () => {
    const r = recorder();
    await runBatchSteps(store, {
      overlap: "writes",
      rules: () => r.run("rules", async () => tick(10)),
      bktElo: (_s, beforeWrite) => r.run("bkt", async () => beforeWrite()),
    });
    expect(r.log).toEqual(["rules start", "rules end", "bkt start", "bkt end"]);
  });

  it("a rule step failing before its writes: BKT/Elo stops at its gate, features still run, the failure is thrown", async () => {
    const r = recorder();
    let wrote = false;
    await expect(
      runBatchSteps(store, {
        overlap: "writes",
        features: () => r.run("features", async () => "f"),
        rules: () =>
          r.run("rules", async () => {
            await tick(10);
            throw new Error("rule step failed on purpose");
          }),
        bktElo: (_s, beforeWrite) =>
          r.run("bkt", async () => {
            await beforeWrite();
            wrote = true;
          }),
      }),
    ).rejects.toThrow("rule step failed on purpose");
    expect(wrote).toBe(false);
    expect(r.log).toContain("features end");
    expect(r.log.indexOf("bkt start")).toBeGreaterThan(r.log.indexOf("rules end"));
  });

  it("a BKT/Elo step failing before its fold ends still lets features run", async () => {
    const r = recorder();
    await expect(
      runBatchSteps(store, {
        overlap: "writes",
        features: () => r.run("features", async () => "f"),
        rules: (_s, writesBegin) =>
          r.run("rules", async () => {
            writesBegin();
            await tick(10);
          }),
        bktElo: () =>
          r.run("bkt", async () => {
            throw new Error("fold failed on purpose");
          }),
      }),
    ).rejects.toThrow("fold failed on purpose");
    expect(r.log).toContain("features end");
  });

  it("in sequence, runs features, rules and BKT/Elo one after another", async () => {
    const r = recorder();
    const out = await runBatchSteps(store, {
      overlap: false,
      features: () => r.run("features", async () => "f"),
      rules: (_s, writesBegin) =>
        r.run("rules", async () => {
          writesBegin();
          await tick();
        }),
      bktElo: (_s, beforeWrite) => r.run("bkt", async () => beforeWrite()),
    });
    expect(out.schedule).toBe("sequence");
    expect(out.overlapped).toBe(false);
    expect(r.log).toEqual([
      "features start",
      "features end",
      "rules start",
      "rules end",
      "bkt start",
      "bkt end",
    ]);
  });
});

describe("batchSchedule", () => {
  it("maps the settings, and auto by raw_events' size", async () => {
    expect(await batchSchedule(store, false)).toBe("sequence");
    expect(await batchSchedule(store, true)).toBe("steps");
    expect(await batchSchedule(store, "writes")).toBe("writes");
    // An empty store: at most OVERLAP_MAX_EVENTS rows.
    expect(await batchSchedule(store, "auto")).toBe("writes");
    // The count is raw_events' row count from the metadata: a stand-in table of one column holds the rows here.
    await store.run(
      `CREATE OR REPLACE TABLE raw_events AS SELECT true AS b FROM range(${OVERLAP_MAX_EVENTS})`,
    );
    expect(await batchSchedule(store, "auto")).toBe("writes");
    // One row past the limit: in sequence (the overlapped steps' memory outside DuckDB's pool adds up).
    await store.run("INSERT INTO raw_events VALUES (true)");
    expect(await batchSchedule(store, "auto")).toBe("sequence");
    expect(await batchSchedule(store, "writes")).toBe("writes");
  });
});

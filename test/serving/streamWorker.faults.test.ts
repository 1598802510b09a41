import { describe, expect, it } from "vitest";
import { onMessageFailure, retryDelayMs } from "../../serving/streamWorker.ts";

/** The worker's decisions on a failed message (the in-process runs: streamWorker.faults.int.test.ts). */
describe("what the worker does with a message that failed on its own", () => {
  it("dead-letters data errors at once, retries others until the delivery limit", () => {
    expect(onMessageFailure("data", 1, 10)).toBe("dead-letter");
    expect(onMessageFailure("other", 1, 10)).toBe("retry");
    expect(onMessageFailure("other", 9, 10)).toBe("retry");
    expect(onMessageFailure("other", 10, 10)).toBe("dead-letter");
  });

  it("backs off exponentially with the delivery count, capped at 30 s", () => {
    expect([1, 2, 3, 4, 8, 20].map((n) => retryDelayMs(n, () => 1))).toEqual([
      500, 1000, 2000, 4000, 30_000, 30_000,
    ]);
  });
});

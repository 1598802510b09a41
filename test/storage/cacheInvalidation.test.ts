import { describe, expect, it } from "vitest";
import { invalidationChannel, parseInvalidation, readInvalidation } from "../../storage/cacheInvalidation.ts";

describe("cache invalidation messages", () => {
  it("reads the keys of a key message", () => {
    expect(parseInvalidation(JSON.stringify({ k: ["a1", "b2"] }))).toEqual(["a1", "b2"]);
    expect(parseInvalidation(JSON.stringify({ k: [] }))).toEqual([]);
  });

  it("anything else drops everything: a bulk bump, an unreadable or unknown message", () => {
    expect(parseInvalidation(JSON.stringify({ all: 1 }))).toBe("all");
    expect(parseInvalidation("not json")).toBe("all");
    expect(parseInvalidation(JSON.stringify({ k: ["a", 3] }))).toBe("all");
    expect(parseInvalidation(JSON.stringify({ v: 2, keys: ["a"] }))).toBe("all");
  });

  it("reads the publisher's origin when the message names one", () => {
    expect(readInvalidation(JSON.stringify({ k: ["a1"], o: "p-1" }))).toEqual({
      keys: ["a1"],
      origin: "p-1",
    });
    expect(readInvalidation(JSON.stringify({ k: ["a1"] }))).toEqual({ keys: ["a1"], origin: null });
    expect(readInvalidation(JSON.stringify({ k: ["a1"], o: 7 }))).toEqual({ keys: ["a1"], origin: null });
    expect(readInvalidation(JSON.stringify({ all: 1, o: "p-1" }))).toEqual({ keys: "all", origin: "p-1" });
    expect(readInvalidation("{")).toEqual({ keys: "all", origin: null });
  });

  it("the channel is under the Redis key prefix", () => {
    expect(invalidationChannel("cache_t1")).toBe("cache_t1:bodycache");
  });
});

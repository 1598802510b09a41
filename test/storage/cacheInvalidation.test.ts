import { describe, expect, it } from "vitest";
import { invalidationChannel, parseInvalidation } from "../../storage/cacheInvalidation.ts";

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

  it("the channel is under the Redis key prefix", () => {
    expect(invalidationChannel("cache_t1")).toBe("cache_t1:bodycache");
  });
});

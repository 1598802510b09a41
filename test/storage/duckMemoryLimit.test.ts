import { describe, expect, it } from "vitest";
import { DuckStore, parseDuckBytes } from "../../storage/duckdb.ts";

describe("parseDuckBytes", () => {
  it("reads DuckDB's binary-unit sizes", () => {
    expect(parseDuckBytes("800.0 MiB")).toBe(838_860_800);
    expect(parseDuckBytes("2.4 GiB")).toBe(Math.round(2.4 * 1_073_741_824)); // 2,576,980,378
    expect(parseDuckBytes("244.1 MiB")).toBe(Math.round(244.1 * 1_048_576));
    expect(parseDuckBytes("1.0 KiB")).toBe(1024);
    expect(parseDuckBytes("1 TiB")).toBe(1_099_511_627_776);
  });

  it("reads decimal units and bare bytes", () => {
    expect(parseDuckBytes("4GB")).toBe(4_000_000_000);
    expect(parseDuckBytes("500 MB")).toBe(500_000_000);
    expect(parseDuckBytes("512 bytes")).toBe(512);
    expect(parseDuckBytes("0 bytes")).toBe(0);
    expect(parseDuckBytes("77")).toBe(77);
  });

  it("names the text and the accepted units when it cannot read it", () => {
    expect(() => parseDuckBytes("lots")).toThrow(/cannot read "lots" as a size in bytes.*MiB/);
    expect(() => parseDuckBytes("4 parsecs")).toThrow(/"4 parsecs"/);
    expect(() => parseDuckBytes("")).toThrow(/e\.g\. "800\.0 MiB"/);
  });
});

describe("DuckStore.memoryLimitBytes", () => {
  it("is the configured memory_limit as DuckDB applies it", async () => {
    const store = await DuckStore.open(":memory:", { memoryLimit: "800MB" });
    try {
      // DuckDB keeps 800 MB = 800,000,000 bytes and prints it as "762.9 MiB": the printed value is read back.
      const bytes = await store.memoryLimitBytes();
      expect(Math.abs(bytes - 800_000_000)).toBeLessThan(0.05 * 2 ** 20 + 1);
      await store.run("SET memory_limit = '2GiB'");
      expect(await store.memoryLimitBytes()).toBe(2 * 2 ** 30);
    } finally {
      store.close();
    }
  });
});

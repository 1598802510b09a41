import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeAllSync } from "../../serving/writeAllSync.ts";

const dir = mkdtempSync(join(tmpdir(), "write-all-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("writeAllSync", () => {
  it("writes a string's UTF-8 bytes and a buffer after it, in order, to the byte", () => {
    const path = join(dir, "a.tsv");
    const fd = openSync(path, "w");
    // 3-byte and 4-byte characters, so a count of UTF-16 units would differ from the bytes written.
    const text = "ñ\t€\t𝛼\n".repeat(20_000);
    const tail = Buffer.from([0x00, 0xff, 0x0a]);
    writeAllSync(fd, text);
    writeAllSync(fd, tail);
    writeAllSync(fd, "");
    closeSync(fd);
    const got = readFileSync(path);
    expect(got.length).toBe(Buffer.byteLength(text, "utf8") + 3);
    expect(got.subarray(0, got.length - 3).toString("utf8")).toBe(text);
    expect([...got.subarray(got.length - 3)]).toEqual([0x00, 0xff, 0x0a]);
  });
});

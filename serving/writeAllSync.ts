import { writeSync } from "node:fs";

/**
 * Writes all of `data` to `fd`: write(2) may write fewer bytes than asked (a signal, a full pipe, a file
 * system near its quota), and fs.writeSync returns that count rather than retrying; this loops until every
 * byte is written. A string is encoded as UTF-8 once, so the loop's offsets are bytes.
 */
export function writeAllSync(fd: number, data: Buffer | string): void {
  const b = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let at = 0;
  while (at < b.length) at += writeSync(fd, b, at, b.length - at);
}

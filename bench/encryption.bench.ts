/**
 * Cost of encryption at rest: the same batch pipeline (ingest of a generated data set, 7/30/90-day
 * features, rule scores) and a read mix (per-student mastery lookups) on a plain DuckDB file
 * (the anchor) and on a DuckDB-encrypted one, alternating, several rounds, DuckDB on one thread;
 * then `mastery db rekey` of the result. Prints medians and the median of the per-round encrypted/plain ratios.
 *   npx tsx bench/encryption.bench.ts [--students 1000] [--rounds 3]
 * Writing encrypted needs DuckDB's httpfs (OpenSSL) module; without it the bench uses the mbedTLS
 * fallback (MASTERY_DB_CRYPTO=mbedtls-unsafe semantics) and says so. Results: docs/benchmarks.md.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { expandPaths, ingestPaths } from "../features/ingest.ts";
import { DEMO_PSEUDONYM_KEY, Pseudonymizer } from "../features/pseudonymize.ts";
import { generateSynthetic } from "../features/synthetic/generate.ts";
import { buildFeatures, resolveAsOf } from "../features/windows.ts";
import { scoreRules } from "../serving/ruleScoring.ts";
import { type DbEncryption, DuckStore, rekeyDuckDbFile } from "../storage/duckdb.ts";
import { seedSchool } from "./seedSchool.ts";

const args = process.argv.slice(2);
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const students = flag("--students", 1000);
const rounds = flag("--rounds", 3);
const work = mkdtempSync(join(tmpdir(), "mastery-enc-bench-"));
const dataDir = join(work, "data");
const KEY = "bench-key-".repeat(4);

const probe = await DuckDBInstance.create(":memory:");
const pc = await probe.connect();
const httpfs = await pc.run("LOAD httpfs").then(
  () => true,
  () => false,
);
pc.closeSync();
probe.closeSync();
const encryption: DbEncryption = { key: KEY, crypto: httpfs ? "openssl" : "mbedtls-unsafe" };
console.log(
  `crypto module: ${httpfs ? "OpenSSL (httpfs)" : "mbedTLS fallback (httpfs not installed)"}; ${students} students; ${rounds} rounds`,
);

const manifest = await generateSynthetic(seedSchool(students, dataDir, { seed: 7, truthEvery: 0 }));
const files = expandPaths([dataDir]);
const pseudonymizer = new Pseudonymizer(DEMO_PSEUDONYM_KEY);
const keys = Array.from({ length: 200 }, (_, i) =>
  pseudonymizer.studentKey(`stu-${String(i % students).padStart(6, "0")}`),
);

interface Run {
  pipeline: number;
  pipelineCpu: number;
  reads: number;
  readsCpu: number;
  bytes: number;
}

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function once(label: string, enc: DbEncryption | null, round: number): Promise<Run> {
  const path = join(work, `${label}-${round}.duckdb`);
  const t0 = performance.now();
  const c0 = cpu();
  const store = await DuckStore.open(path, { encryption: enc, threads: 1 });
  await ingestPaths(store, files, { pseudonymizer });
  const asOf = await resolveAsOf(store, "now");
  await buildFeatures(store, asOf, { truncate: true });
  await scoreRules(store, { asOf });
  await store.run("CHECKPOINT");
  const pipeline = (performance.now() - t0) / 1000;
  const pipelineCpu = cpu() - c0;
  const r0 = performance.now();
  const rc0 = cpu();
  for (const k of keys) {
    await store.all(
      "SELECT topic_id, mastery_score, explanation FROM student_mastery WHERE student_key = $1",
      [k],
    );
  }
  const reads = (performance.now() - r0) / 1000;
  const readsCpu = cpu() - rc0;
  store.close();
  const bytes = statSync(path).size;
  return { pipeline, pipelineCpu, reads, readsCpu, bytes };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const plain: Run[] = [];
const encrypted: Run[] = [];
for (let r = 0; r < rounds; r++) {
  plain.push(await once("plain", null, r));
  encrypted.push(await once("enc", encryption, r));
  console.log(
    `round ${r + 1}: plain ${plain.at(-1)!.pipeline.toFixed(2)} s, encrypted ${encrypted.at(-1)!.pipeline.toFixed(2)} s`,
  );
}
// Each round runs plain then encrypted back to back, so the per-round ratio cancels most of the drift
// of a shared machine's load; the median of those ratios is the figure to quote. CPU seconds (all of
// DuckDB's threads) move less with other processes' load than wall time.
const row = (name: string, f: (x: Run) => number, unit: string, digits = 2) => {
  const p = median(plain.map(f));
  const e = median(encrypted.map(f));
  const paired = median(plain.map((x, i) => f(encrypted[i]!) / f(x)));
  console.log(
    `${name.padEnd(40)} plain ${p.toFixed(digits)} ${unit}  encrypted ${e.toFixed(digits)} ${unit}  median paired ratio ${paired.toFixed(2)}`,
  );
};
console.log(`\n${manifest.counts.events} events, medians of ${rounds}:`);
row("ingest+features+rules, wall (s)", (x) => x.pipeline, "s");
row("ingest+features+rules, CPU (s)", (x) => x.pipelineCpu, "s");
row("200 student_mastery reads, wall (ms each)", (x) => (1000 * x.reads) / keys.length, "ms", 3);
row("200 student_mastery reads, CPU (ms each)", (x) => (1000 * x.readsCpu) / keys.length, "ms", 3);
row("file size (MB)", (x) => x.bytes / 1e6, "MB");

const t0 = performance.now();
const rekey = await rekeyDuckDbFile(join(work, "enc-0.duckdb"), {
  fromKey: KEY,
  toKey: `${KEY}-new`,
  crypto: encryption.crypto,
  dropOld: true,
});
console.log(
  `rekey (copy under a new key + row-count check): ${((performance.now() - t0) / 1000).toFixed(2)} s for ${rekey.rows} rows in ${rekey.tables} tables`,
);
rmSync(work, { recursive: true, force: true });

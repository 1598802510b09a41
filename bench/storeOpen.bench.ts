/**
 * What opening the embedded store costs (storage/duckdb.ts DuckStore.open, storage/coreSchema.ts): this
 * process's CPU (user + system, DuckDB's threads included) and wall per open, for
 * - the first new `:memory:` store (the migration, ~145 statements),
 * - the next OPEN_N new `:memory:` stores (the tests' case: the first one's catalog replayed),
 * - OPEN_N new files (a new file is an empty catalog too),
 * - OPEN_N reopens of one existing file (the product's start: the migration, every step a no-op).
 * Each open is closed before the next. Prints the median and mean per open.
 *
 *   npx tsx bench/storeOpen.bench.ts
 *   OPEN_N=100 npx tsx bench/storeOpen.bench.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckStore } from "../storage/duckdb.ts";
import { envNumber } from "./benchEnv.ts";

const N = envNumber("OPEN_N", 50);
const dir = mkdtempSync(join(tmpdir(), "store-open-bench-"));

interface Cost {
  cpuMs: number;
  wallMs: number;
}

async function timed(open: () => Promise<DuckStore>): Promise<Cost> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const store = await open();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  store.close();
  return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

function report(name: string, costs: Cost[]): void {
  const cpu = costs.map((c) => c.cpuMs);
  const wall = costs.map((c) => c.wallMs);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(
    `${name.padEnd(34)} n=${String(costs.length).padStart(4)}  CPU median ${median(cpu).toFixed(1).padStart(6)} ms, mean ${mean(cpu).toFixed(1).padStart(6)} ms;  wall median ${median(wall).toFixed(1).padStart(6)} ms`,
  );
}

try {
  report("first new :memory: store", [await timed(() => DuckStore.open(":memory:"))]);
  const memory: Cost[] = [];
  for (let i = 0; i < N; i++) memory.push(await timed(() => DuckStore.open(":memory:")));
  report("next new :memory: stores", memory);
  const files: Cost[] = [];
  for (let i = 0; i < N; i++)
    files.push(await timed(() => DuckStore.open(join(dir, `new${i}.duckdb`), { encryption: null })));
  report("new files", files);
  const reopen: Cost[] = [];
  for (let i = 0; i < N; i++)
    reopen.push(await timed(() => DuckStore.open(join(dir, "new0.duckdb"), { encryption: null })));
  report("reopens of an existing file", reopen);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

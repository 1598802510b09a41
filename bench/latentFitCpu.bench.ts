/**
 * Round 30: the latent filter's fit (serving/latentScoring.ts fitLatentOnStore, with the options `mastery train
 * served` passes by default) at the big bench's training size (bench/trainedServedModel.ts: a generated school of
 * 2,000 students x 120 topics x 30 days through the pipeline, the fit on the events before the last 7 days), with
 * the default global fit ("budget") and the converged one (`--latent-global-fit converged`), interleaved A B B A
 * in one process. CPU = the process's user + system time over the fit (DuckDB's read of the sequences included;
 * the fit itself is single-threaded JS).
 *
 *   STUDENTS=2000 PAIRS=1 npx tsx bench/latentFitCpu.bench.ts     # BENCH_DIR (default $TMPDIR/latentFitCpu) keeps the store
 *   ORDER=converged,budget ...                                   # these fits in this order instead of PAIRS x A B B A
 */
import { existsSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { LATENT_GLOBAL_FITS, type LatentGlobalFit } from "../models/latentFilter.ts";
import { fitLatentOnStore } from "../serving/latentScoring.ts";
import { resolveModels } from "../serving/learnerState.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { servedLatentFitDefaults } from "../serving/servedTraining.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { seedSchool } from "./seedSchool.ts";

const students = Number(process.env.STUDENTS ?? 2000);
const pairs = Number(process.env.PAIRS ?? 1);
const dir = process.env.BENCH_DIR ?? join(tmpdir(), "latentFitCpu");
const dbPath = join(dir, `store-${students}`, "mastery.duckdb");
if (!existsSync(dbPath)) {
  const store = await DuckStore.open(dbPath);
  try {
    await runPipeline({
      store,
      pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
      dataDir: join(dir, `store-${students}`, "data"),
      generate: seedSchool(students, join(dir, `store-${students}`, "data"), { days: 30 }),
      models: (s) => resolveModels(s, { seed: 0 }),
      bktEloFull: true,
    });
  } finally {
    store.close();
  }
}
const store = await DuckStore.open(dbPath);
const r = await store.one<{ t: Date }>("SELECT max(ts) AS t FROM raw_events");
if (r?.t === undefined) throw new Error(`${dbPath} has no raw_events: delete ${dir} and rerun to rebuild it`);
// trainServed's snapshot with its defaults: labelEnd = the latest event + 1 s, 7 label days.
const snapshot = new Date(r.t.getTime() + 1000 - 7 * 86_400_000);
const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
// ORDER=converged,budget runs those fits in that order instead (e.g. the second half of a pair).
const order: LatentGlobalFit[] = [];
if (process.env.ORDER !== undefined && process.env.ORDER !== "")
  for (const o of process.env.ORDER.split(",")) {
    const hit = LATENT_GLOBAL_FITS.find((m) => m === o);
    if (hit === undefined)
      throw new Error(`ORDER: each entry is one of ${LATENT_GLOBAL_FITS.join(", ")} (got ${o})`);
    order.push(hit);
  }
else for (let i = 0; i < pairs; i++) order.push("budget", "converged", "converged", "budget");
for (const globalFit of order) {
  const c0 = cpu();
  const t0 = performance.now();
  const fit = await fitLatentOnStore(store, snapshot, { ...servedLatentFitDefaults(), globalFit });
  const f = fit.model.json.fit;
  const gp = f.globalPolish;
  console.log(
    `${globalFit.padEnd(9)} ${(cpu() - c0).toFixed(1)} CPU-s ${((performance.now() - t0) / 1000).toFixed(1)} s wall, load ${loadavg()
      .map((v) => v.toFixed(1))
      .join(
        " ",
      )}; ${fit.sequences} pairs, ${f.observations} observations, ll/obs ${f.logLikPerObs.toFixed(5)}, ${f.evaluations} passes${gp !== undefined ? ` + ${gp.evaluations} (${gp.restarts} restarts, ${gp.iterations} BFGS steps, stop ${gp.stop}, +${(gp.logLikAfter - gp.logLikBefore).toFixed(2)} nats)` : ""}`,
  );
}
store.close();

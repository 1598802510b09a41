/**
 * The latent filter's per-student scoring (models/latentStudent.ts scoreStudentLatent) alone, on one thread: the
 * kernel of the served score in the daily batch (issue 17 item 1; docs/benchmarks.md "The served score in the
 * daily batch: measured (served25)"), without the store's reads and writes around it.
 *
 * 1. The store and the served model as bench/servedBatch.bench.ts builds them (runPipeline on generated data,
 *    STUDENTS=N x 30 days; trainServed with `mastery train served`'s defaults), or its store reused (REUSE=1, the
 *    same BENCH_DIR layout: BENCH_DIR/store-N/{mastery.duckdb, built.json, model/}) and a model (MODEL=dir).
 * 2. The inputs as serving/servedScoring.ts scoreServed reads them (outside the timing): every pair's sequence
 *    (serving/latentScoring.ts loadLatentSequences) and the pairs with a stored score but no event before as-of
 *    (the evidence's other pairs: each student's prior topics), as of the batch's as-of (latest event + 1 s).
 * 3. Times scoreStudentLatent over every student in the batch's order (attachLatent's options: widened, no raw),
 *    PASSES times: CPU-us (process user + sys) and wall per raw event and per pair (sequences + prior pairs).
 * 4. A digest: sha256 of the float64 bits of every output number (offset, offsetSd, and every estimate's score,
 *    lo, hi, pCorrect, pFloor, floor, base, contributions, observations, events, daysSinceLast, with presence
 *    flags), so two builds can be compared bit for bit: the digests must be equal.
 *
 *   STUDENTS=10000 REUSE=1 BENCH_DIR=/tmp/x/bench nice -n 10 node --import tsx bench/latentStudent.bench.ts
 *   PROFILE: node --cpu-prof --cpu-prof-dir=/tmp/x/prof --import tsx bench/latentStudent.bench.ts
 *   STUDENT_LIMIT=n scores only the first n students (smoke runs); PASSES (default 1).
 */
import { createHash } from "node:crypto";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { resolveAsOf } from "../features/windows.ts";
import {
  LATENT_FACTORS,
  type LatentEstimate,
  LatentFilter,
  type LatentSequence,
} from "../models/latentFilter.ts";
import { type StudentLatentResult, scoreStudentLatent } from "../models/latentStudent.ts";
import { studentOffsetSd } from "../models/studentOffsetSd.ts";
import { loadLatentSequences } from "../serving/latentScoring.ts";
import { resolveModels } from "../serving/learnerState.ts";
import { runPipeline } from "../serving/pipeline.ts";
import { loadPairEvidence } from "../serving/servedInputs.ts";
import { loadServedModel } from "../serving/servedScoring.ts";
import { trainServed } from "../serving/servedTraining.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { cpuNow } from "./cpuClock.ts";
import { seedSchool } from "./seedSchool.ts";

const students = Number(process.env.STUDENTS ?? 10_000);
const days = Number(process.env.DAYS ?? 30);
const passes = Number(process.env.PASSES ?? 1);
const limit =
  process.env.STUDENT_LIMIT === undefined ? Number.POSITIVE_INFINITY : Number(process.env.STUDENT_LIMIT);
const reuse = process.env.REUSE === "1";
// fold27: WIDENING=refold|basis picks scoreStudentLatent's `widening` (unset: the model's / the default);
// COMPARE=1 also scores every student both ways after the timing and prints how the intervals differ.
const widening =
  process.env.WIDENING === "basis" || process.env.WIDENING === "refold" ? process.env.WIDENING : undefined;
if ((process.env.WIDENING ?? "") !== "" && widening === undefined)
  throw new Error(`WIDENING must be refold or basis (got ${process.env.WIDENING}); unset it for the default`);
const compare = process.env.COMPARE === "1";
const root = join(process.env.BENCH_DIR ?? join(tmpdir(), "servedBatch"), `store-${students}`);
const dbPath = join(root, "mastery.duckdb");
const builtPath = join(root, "built.json");
const modelDir = process.env.MODEL ?? join(root, "model");
const DAY_MS = 86_400_000;

const load = () => loadavg().map((x) => Number(x.toFixed(2)));
const log = (s: string) => process.stderr.write(`${new Date().toISOString()} ${s}\n`);

// 1. The store and the model (bench/servedBatch.bench.ts's: the same layout, so either bench reuses the other's).
if (!(reuse && existsSync(builtPath) && existsSync(dbPath))) {
  rmSync(root, { recursive: true, force: true });
  const dataDir = join(root, "data");
  const store = await DuckStore.open(dbPath);
  log(`building ${dbPath} (${students} students x ${days} days)`);
  const b = await runPipeline({
    store,
    pseudonymizer: new Pseudonymizer("bench-key-0123456789abcdef"),
    dataDir,
    generate: seedSchool(students, dataDir, { days }),
    models: (s) => resolveModels(s, { seed: 0 }),
    bktEloFull: true,
  });
  await store.run("CHECKPOINT");
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
  writeFileSync(builtPath, JSON.stringify({ events: b.events, pipelineSeconds: {}, buildLoad: load() }));
}
if (!(existsSync(join(modelDir, "model.json")) && (reuse || process.env.MODEL !== undefined))) {
  log(`training the served model into ${modelDir} (trainServed's defaults)`);
  await trainServed({ dbPath, out: modelDir });
}
const { model: served, version } = loadServedModel(modelDir);
if (served.json.latent === undefined)
  throw new Error(
    `the served model ${modelDir} has no latent filter: train one with \`mastery train served\``,
  );
const model = LatentFilter.fromJSON(served.json.latent);

// 2. The inputs, as scoreServed / attachLatent read them.
const store = await DuckStore.open(dbPath);
const asOf = await resolveAsOf(store, "now");
const evidence = await loadPairEvidence(store, asOf);
const seqs = await loadLatentSequences(store, asOf);
const rawEvents = Number((await store.one<{ n: bigint }>("SELECT count(*) AS n FROM raw_events"))?.n ?? 0n);
store.close();
const priorPairs = new Map<string, string[]>();
for (const [k, e] of evidence) {
  if (seqs.has(k)) continue;
  const st = k.slice(0, k.indexOf("|"));
  const l = priorPairs.get(st) ?? [];
  l.push(e.topic);
  priorPairs.set(st, l);
}
const byStudent = new Map<string, LatentSequence[]>();
for (const s of seqs.values()) {
  const st = s.student ?? "";
  const l = byStudent.get(st) ?? [];
  l.push(s);
  byStudent.set(st, l);
}
for (const st of priorPairs.keys()) if (!byStudent.has(st)) byStudent.set(st, []);
const work: { seqs: LatentSequence[]; topics: string[] }[] = [];
let pairs = 0;
let events = 0;
for (const [st, list] of byStudent) {
  if (work.length >= limit) break;
  const topics = priorPairs.get(st) ?? [];
  work.push({ seqs: list, topics });
  pairs += list.length + topics.length;
  for (const s of list) events += s.events.length;
}
const asOfDays = asOf.getTime() / DAY_MS;
log(
  `${work.length} students, ${pairs} pairs, ${events} filter events (${rawEvents} raw rows), as of ${asOf.toISOString()}, model ${version}`,
);

// 3. The timing.
const timings: { cpuSeconds: number; seconds: number; load: number[] }[] = [];
let results: StudentLatentResult[] = [];
for (let pass = 0; pass < passes; pass++) {
  results = new Array(work.length);
  const t0 = performance.now();
  const c0 = cpuNow();
  for (let i = 0; i < work.length; i++) {
    const w = work[i]!;
    results[i] = scoreStudentLatent(
      model,
      w.seqs,
      w.topics,
      asOfDays,
      widening === undefined ? {} : { widening },
    );
  }
  const r = { cpuSeconds: cpuNow() - c0, seconds: (performance.now() - t0) / 1000, load: load() };
  timings.push(r);
  log(`pass ${pass}: ${r.seconds.toFixed(2)} s, cpu ${r.cpuSeconds.toFixed(2)} s, load ${r.load.join(" ")}`);
}

// 4. The digest of every output number's bits.
const hash = createHash("sha256");
const buf = new Float64Array(1 << 16);
let n = 0;
const put = (x: number) => {
  buf[n++] = x;
  if (n === buf.length) {
    hash.update(new Uint8Array(buf.buffer));
    n = 0;
  }
};
const putEstimate = (e: LatentEstimate) => {
  put(e.score);
  put(e.lo);
  put(e.hi);
  put(e.pCorrect);
  put(e.pFloor === undefined ? 0 : 1);
  put(e.pFloor ?? 0);
  put(e.floor === undefined ? 0 : 1);
  put(e.floor ?? 0);
  put(e.base);
  put(Object.keys(e.contributions).length);
  for (const f of LATENT_FACTORS) put(e.contributions[f]);
  put(e.observations);
  put(e.events);
  put(e.daysSinceLast === null ? 0 : 1);
  put(e.daysSinceLast ?? 0);
};
for (const r of results) {
  put(r.offset);
  put(r.offsetSd);
  put(r.estimates.length);
  for (const e of r.estimates) putEstimate(e);
  put(r.priors.length);
  for (const e of r.priors) putEstimate(e);
}
hash.update(new Uint8Array(buf.buffer, 0, n * 8));
const digest = hash.digest("hex");
// fold27: the same numbers without lo, hi and offsetSd (what the widening may change): equal between the two
// widenings and main when the scores are the same bits.
const scoresHash = createHash("sha256");
{
  const xs: number[] = [];
  const est = (e: LatentEstimate) => {
    xs.push(
      e.score,
      e.pCorrect,
      e.pFloor ?? -1,
      e.floor ?? -1,
      e.base,
      e.observations,
      e.events,
      e.daysSinceLast ?? -1,
    );
    for (const f of LATENT_FACTORS) xs.push(e.contributions[f]);
  };
  for (const r of results) {
    xs.push(r.offset, r.estimates.length, r.priors.length);
    for (const e of r.estimates) est(e);
    for (const e of r.priors) est(e);
    if (xs.length > 1 << 16) {
      scoresHash.update(new Uint8Array(Float64Array.from(xs).buffer));
      xs.length = 0;
    }
  }
  scoresHash.update(new Uint8Array(Float64Array.from(xs).buffer));
}
const scoresDigest = scoresHash.digest("hex");
let comparison: Record<string, number> | null = null;
if (compare) {
  // Every student scored both ways (outside the timing): the offset sd's and the interval ends' differences.
  const q = (xs: Float64Array, p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
  const sdRel: number[] = [];
  const ends: number[] = [];
  const widthRel: number[] = [];
  let scoreDiffs = 0;
  for (const w of work) {
    const a = scoreStudentLatent(model, w.seqs, w.topics, asOfDays, { widening: "refold" });
    const b = scoreStudentLatent(model, w.seqs, w.topics, asOfDays, { widening: "basis" });
    if (!Object.is(a.offset, b.offset)) scoreDiffs++;
    if (a.offsetSd > 0) sdRel.push(b.offsetSd / a.offsetSd - 1);
    const ea = [...a.estimates, ...a.priors];
    const eb = [...b.estimates, ...b.priors];
    ea.forEach((x, i) => {
      const y = eb[i]!;
      if (!Object.is(x.score, y.score)) scoreDiffs++;
      ends.push(Math.max(Math.abs(x.lo - y.lo), Math.abs(x.hi - y.hi)));
      if (x.hi > x.lo) widthRel.push((y.hi - y.lo) / (x.hi - x.lo) - 1);
    });
  }
  // The two approximations apart, on every covered pair: the widening's half-change d at today's sd from the
  // interpolated basis scores against the refolds at offset -+ sd; and the served score (the mixture of the two
  // basis parts, mixAt) against a direct fold at the student's offset (predictScore: that offset's prior and
  // learning rates).
  const dErr: number[] = [];
  const dRef: number[] = [];
  const mixErr: number[] = [];
  for (const w of work) {
    if (w.seqs.length === 0) continue;
    const r = model.predictStudentBasis(w.seqs, asOfDays);
    const sd = studentOffsetSd(model, w.seqs, r.offset);
    w.seqs.forEach((s, i) => {
      if (!model.studentTopic(s.topic)) return;
      const o = r.offset;
      const dOld =
        Math.abs(
          model.predictScore(s.topic, s.events, asOfDays, o + sd) -
            model.predictScore(s.topic, s.events, asOfDays, o - sd),
        ) / 2;
      const dNew =
        Math.abs(
          model.interpolateBasis(r.scores[i]!, o + sd) - model.interpolateBasis(r.scores[i]!, o - sd),
        ) / 2;
      dErr.push(Math.abs(dNew - dOld));
      dRef.push(dOld);
      mixErr.push(Math.abs(r.estimates[i]!.score - model.predictScore(s.topic, s.events, asOfDays, o)));
    });
  }
  const sd4 = Float64Array.from(dErr).sort();
  const sd5 = Float64Array.from(mixErr).sort();
  const sd6 = Float64Array.from(dRef).sort();
  const sorted = (xs: number[]) => Float64Array.from(xs).sort();
  const s1 = sorted(sdRel);
  const s2 = sorted(ends);
  const s3 = sorted(widthRel);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  comparison = {
    scoreDiffs,
    students: sdRel.length,
    sdRelQ05: q(s1, 0.05),
    sdRelMedian: q(s1, 0.5),
    sdRelQ95: q(s1, 0.95),
    sdRelMeanAbs: mean(sdRel.map(Math.abs)),
    pairs: ends.length,
    endAbsMedian: q(s2, 0.5),
    endAbsQ95: q(s2, 0.95),
    endAbsQ99: q(s2, 0.99),
    endAbsMax: q(s2, 1),
    widthRelMean: mean(widthRel),
    widthRelQ05: q(s3, 0.05),
    widthRelQ95: q(s3, 0.95),
    coveredPairs: dErr.length,
    widenDMedian: q(sd6, 0.5),
    widenDErrMedian: q(sd4, 0.5),
    widenDErrQ95: q(sd4, 0.95),
    widenDErrMax: q(sd4, 1),
    mixVsDirectMedian: q(sd5, 0.5),
    mixVsDirectQ95: q(sd5, 0.95),
    mixVsDirectMax: q(sd5, 1),
  };
  log(`compare refold / basis: ${JSON.stringify(comparison)}`);
}

const best = timings.reduce((a, b) => (b.cpuSeconds < a.cpuSeconds ? b : a));
const out = {
  students: work.length,
  pairs,
  filterEvents: events,
  rawEvents,
  model: version,
  passes: timings.map((t) => ({
    seconds: Number(t.seconds.toFixed(3)),
    cpuSeconds: Number(t.cpuSeconds.toFixed(3)),
    load: t.load,
  })),
  // Per raw row of the store only when every student was scored (STUDENT_LIMIT unset).
  cpuUsPerRawEvent:
    work.length === byStudent.size ? Number(((best.cpuSeconds * 1e6) / rawEvents).toFixed(3)) : null,
  cpuUsPerFilterEvent: Number(((best.cpuSeconds * 1e6) / events).toFixed(3)),
  cpuUsPerPair: Number(((best.cpuSeconds * 1e6) / pairs).toFixed(2)),
  digest,
  scoresDigest,
  widening: widening ?? "default",
  ...(comparison !== null ? { comparison } : {}),
};
log(
  `scoreStudentLatent: ${out.cpuUsPerRawEvent} CPU-us per raw event, ${out.cpuUsPerFilterEvent} per filter event, ${out.cpuUsPerPair} per pair, digest ${digest}, scores digest ${scoresDigest}`,
);
process.stdout.write(`${JSON.stringify(out)}\n`);

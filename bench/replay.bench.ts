/**
 * One replay path, timed: the same events through the stream's incremental updater
 * (serving/updater.ts on the embedded DuckDB stores: batches of BATCH rows in publish order, with
 * late and duplicate events) and through batch replays of the stored events: the pure fold
 * (models/learnerState.ts replayEvents per key, what `mastery recompute` runs) and the batch job
 * (`mastery score bkt-elo --full`, SQL read + fold + writes). Prints events/s of each, the ratios
 * to the pure fold (the anchor), and checks that the three states agree (recompute report).
 *
 *   npx tsx bench/replay.bench.ts                     # 20,000 events (short default)
 *   REPLAY_EVENTS=200000 REPEAT=3 npx tsx bench/replay.bench.ts
 *
 * LATENT_AB=1: the stream updater without (A) and with (B) a served model's latent filter
 * (serving/latentStream.ts), REPEAT times each, interleaved (A B, B A, ...), on DuckDB files under
 * /tmp/latstream/; prints events/s of each (medians, ratio B/A), the pure folds' events/s (BKT/Elo
 * replayEvents vs the latent filter's foldLatent), the stored bytes per pair, the DuckDB file growth per
 * pair and the load average; checks B's state against the replay (recompute).
 *   LATENT_AB=1 REPLAY_EVENTS=20000 REPEAT=3 npx tsx bench/replay.bench.ts
 * LATENT_AB=student: A = the latent filter without a student effect, B = with one (studentPriorSd 1.5, every
 * topic covered: basis states, the student's other pairs committed and rescored with each batch).
 *   LATENT_AB=student REPLAY_EVENTS=10000 REPEAT=3 npx tsx bench/replay.bench.ts
 */

import { mkdirSync, rmSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { validateEvent } from "../features/contracts.ts";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { encodeLatentBasis, foldLatentBasis } from "../models/latentState.ts";
import { replayEvents, replayOrder, topicParamsResolver } from "../models/learnerState.ts";
import { type BktEloModels, scoreBktElo } from "../serving/learnerState.ts";
import { recompute } from "../serving/recompute.ts";
import { openStreamStores } from "../serving/streamStores.ts";
import { IncrementalUpdater, learnerEvent, rowsFromEvent, streamModels } from "../serving/updater.ts";
import { DuckStore } from "../storage/duckdb.ts";
import type { LearnerRow, RawEventRow } from "../storage/rawEventStore.ts";
import { generateStreamEvents } from "../test/serving/streamEvents.ts";
import { benchServedModel } from "./benchServedModel.ts";

const N = Number(process.env.REPLAY_EVENTS ?? 20_000);
const BATCH = Number(process.env.BATCH ?? 500);
const REPEAT = Number(process.env.REPEAT ?? 1);
const MODELS: BktEloModels = { bkt: undefined, bktVersion: "default", elo: undefined, eloVersion: "default" };
const pseudonymizer = new Pseudonymizer("replay-bench-key-0123456789");
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const set = generateStreamEvents({
  students: Math.max(20, Math.round(N / 100)),
  topics: 12,
  events: N,
  seed: 7,
});
const baseUs = Date.UTC(2026, 2, 1) * 1000;
const batches: RawEventRow[][] = [];
for (let i = 0; i < set.publishOrder.length; i += BATCH) {
  const ingestedAtUs = baseUs + i;
  batches.push(
    set.publishOrder.slice(i, i + BATCH).flatMap((e) => {
      const v = validateEvent(e);
      if (!v.ok) throw new Error(`generated event is invalid: ${JSON.stringify(v.issues)}`);
      return rowsFromEvent(v.value, pseudonymizer, { source: "bench", ingestedAtUs });
    }),
  );
}
const nRows = batches.reduce((a, b) => a + b.length, 0);
console.log(
  `events: ${set.events.length} distinct, ${set.publishOrder.length} published (late + duplicates), ${nRows} (event, topic) rows, batches of ${BATCH}; repeat ${REPEAT}`,
);

if (process.env.LATENT_AB === "1" || process.env.LATENT_AB === "student") {
  await latentAb();
  process.exit(process.exitCode ?? 0);
}

const streamS: number[] = [];
const foldS: number[] = [];
const jobS: number[] = [];
let storedRows = 0;
let ok = true;
let replayedKeys = 0;
for (let rep = 0; rep < REPEAT; rep++) {
  const duck = await DuckStore.open(":memory:");
  const stores = await openStreamStores({ dbPath: ":memory:", duck });
  let t = baseUs;
  const updater = new IncrementalUpdater({ ...stores, models: MODELS, nowUs: () => (t += 1000) });
  let t0 = performance.now();
  for (const b of batches) await updater.apply(b);
  streamS.push((performance.now() - t0) / 1000);
  replayedKeys = updater.stats.replayedKeys;
  const ms = updater.stats.ms;
  if (rep === 0)
    console.log(
      `stream time by step (s): ${Object.entries(ms)
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)}`)
        .join(", ")}`,
    );

  // The pure fold over every stored event (read once, outside the timing).
  const events: LearnerRow[] = await stores.raw.allEvents();
  storedRows = events.length;
  const paramsFor = topicParamsResolver(MODELS);
  t0 = performance.now();
  let k = 0;
  let keys = 0;
  while (k < events.length) {
    const first = events[k]!;
    const j0 = k;
    while (
      k < events.length &&
      events[k]!.student_key === first.student_key &&
      events[k]!.topic_id === first.topic_id
    )
      k++;
    replayEvents(events.slice(j0, k).map(learnerEvent), paramsFor(first.topic_id));
    keys++;
  }
  foldS.push((performance.now() - t0) / 1000);

  // The stream's result must equal the replay (bit for bit) before the batch job rewrites it.
  const report = await recompute(stores, MODELS);
  ok &&= report.ok;

  t0 = performance.now();
  await scoreBktElo(duck, MODELS, { full: true, now: new Date(baseUs / 1000) });
  jobS.push((performance.now() - t0) / 1000);
  const again = await recompute(stores, MODELS);
  ok &&= again.tables.find((x) => x.table === "learner_state")!.differences === 0;
  if (rep === 0)
    console.log(`keys: ${keys}; stream replayed ${replayedKeys} keys (late events, first events)`);
  await stores.close();
  duck.close();
}

const rate = (s: number[]) => storedRows / median(s);
const fold = rate(foldS);
const line = (label: string, s: number[]) =>
  `${label.padEnd(34)} ${median(s).toFixed(3).padStart(8)} s  ${Math.round(rate(s)).toLocaleString("en-US").padStart(12)} events/s  ratio vs fold ${(rate(s) / fold).toFixed(3)}`;
console.log(line("pure fold (replayEvents, anchor)", foldS));
console.log(line("stream updater (IncrementalUpdater)", streamS));
console.log(line("batch job (score bkt-elo --full)", jobS));
console.log(`states equal (recompute after the stream, and after the batch job): ${ok ? "yes" : "NO"}`);
if (!ok) process.exitCode = 1;

/** Rows of a table in a closed DuckDB file (reopened read-only for the count). */
async function sizeOf(path: string, table: string): Promise<number> {
  const d = await DuckStore.open(path);
  const r = await d.one<{ n: number }>(`SELECT count(*)::DOUBLE AS n FROM ${table}`);
  d.close();
  return Number(r?.n ?? 0);
}

async function latentAb(): Promise<void> {
  const root = `/tmp/latstream/replay-bench-${process.pid}`;
  mkdirSync(root, { recursive: true });
  const student = process.env.LATENT_AB === "student";
  const withLatent: BktEloModels = {
    ...MODELS,
    ...streamModels({
      servedModelDir: benchServedModel(
        join(root, "served"),
        student ? { priorSd: 1.5, topics: Array.from({ length: 12 }, (_, t) => `topic-${t}`) } : undefined,
      ),
    }),
  };
  // LATENT_AB=student: A is the latent filter without the student effect, B with it.
  const baseline: BktEloModels = student
    ? { ...MODELS, ...streamModels({ servedModelDir: benchServedModel(join(root, "served-a")) }) }
    : MODELS;
  const run = async (label: "A" | "B", rep: number) => {
    const models = label === "B" ? withLatent : baseline;
    const path = join(root, `${label}${rep}.duckdb`);
    const duck = await DuckStore.open(path);
    const stores = await openStreamStores({ dbPath: path, duck });
    let t = baseUs;
    const updater = new IncrementalUpdater({ ...stores, models, nowUs: () => (t += 1000) });
    const t0 = performance.now();
    for (const b of batches) await updater.apply(b);
    const s = (performance.now() - t0) / 1000;
    const steps = Object.entries(updater.stats.ms)
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`)
      .join(", ");
    await duck.run("CHECKPOINT");
    const keys = (await stores.state.all()).length;
    const blob = await duck.one<{ n: number }>(
      "SELECT coalesce(avg(octet_length(latent_state)), 0)::DOUBLE AS n FROM learner_state",
    );
    const events = await stores.raw.allEvents();
    let ok = true;
    if (label === "B" && rep === 0) ok = (await recompute(stores, models)).ok;
    await stores.close();
    duck.close();
    const bytes = statSync(path).size;
    const hist = await sizeOf(path, "student_mastery_history");
    rmSync(path, { force: true });
    rmSync(`${path}.wal`, { force: true });
    return { s, keys, bytes, blob: Number(blob?.n ?? 0), rows: events.length, ok, events, steps, hist };
  };
  const a: number[] = [];
  const b: number[] = [];
  const sizes = { A: 0, B: 0 };
  let keys = 0;
  let blob = 0;
  let ok = true;
  let rows = 0;
  let events: LearnerRow[] = [];
  const load0 = loadavg()[0]!;
  for (let rep = 0; rep < REPEAT; rep++) {
    for (const label of rep % 2 === 0 ? (["A", "B"] as const) : (["B", "A"] as const)) {
      const r = await run(label, rep);
      (label === "A" ? a : b).push(r.s);
      sizes[label] = r.bytes;
      keys = r.keys;
      rows = r.rows;
      if (label === "B") blob = r.blob;
      ok &&= r.ok;
      events = r.events;
      console.log(
        `rep ${rep} ${label}: ${r.s.toFixed(2)} s, ${Math.round(r.rows / r.s)} events/s; seconds by step: ${r.steps}; history rows ${r.hist}`,
      );
    }
  }
  // The pure folds over the same stored events (no I/O): BKT/Elo vs the latent filter.
  const paramsFor = topicParamsResolver(MODELS);
  const filter = withLatent.latent!.filter;
  const byKey: LearnerRow[][] = [];
  for (let k = 0; k < events.length; ) {
    const first = events[k]!;
    const j0 = k;
    while (
      k < events.length &&
      events[k]!.student_key === first.student_key &&
      events[k]!.topic_id === first.topic_id
    )
      k++;
    byKey.push(events.slice(j0, k));
  }
  const foldBkt: number[] = [];
  const foldLat: number[] = [];
  for (let rep = 0; rep < Math.max(3, REPEAT); rep++) {
    let t0 = performance.now();
    for (const ks of byKey) replayEvents(ks.map(learnerEvent), paramsFor(ks[0]!.topic_id));
    foldBkt.push((performance.now() - t0) / 1000);
    t0 = performance.now();
    for (const ks of byKey)
      encodeLatentBasis(foldLatentBasis(filter, ks[0]!.topic_id, replayOrder(ks.map(learnerEvent))));
    foldLat.push((performance.now() - t0) / 1000);
  }
  const load1 = loadavg()[0]!;
  rmSync(root, { recursive: true, force: true });
  const rate = (xs: number[]) => rows / median(xs);
  console.log(
    `load average (1 min) ${load0.toFixed(1)} at start, ${load1.toFixed(1)} at end; ${keys} keys, ${rows} stored rows`,
  );
  console.log(
    `A stream updater, ${student ? "latent, no student effect" : "BKT/Elo only     "} median ${median(a).toFixed(2)} s  ${Math.round(rate(a))} events/s`,
  );
  console.log(
    `B stream updater + ${student ? "latent + student effect" : "latent filter          "} median ${median(b).toFixed(2)} s  ${Math.round(rate(b))} events/s`,
  );
  console.log(
    `ratio B/A (events/s) ${(rate(b) / rate(a)).toFixed(3)}; per run: A ${a.map((x) => x.toFixed(2)).join(" ")}, B ${b.map((x) => x.toFixed(2)).join(" ")}`,
  );
  console.log(`pure fold BKT/Elo (replayEvents)     ${Math.round(rate(foldBkt))} events/s`);
  console.log(
    `pure fold latent (foldLatentBasis+encode, ${filter.studentGrid().length} part(s)) ${Math.round(rate(foldLat))} events/s`,
  );
  console.log(`latent state per pair: ${blob} bytes (Redis: ${Math.ceil(blob / 3) * 4} base64 characters)`);
  console.log(
    `DuckDB file after CHECKPOINT: A ${sizes.A} B ${sizes.B} bytes, +${((sizes.B - sizes.A) / keys).toFixed(0)} bytes per pair`,
  );
  console.log(`B state equals the replay (recompute): ${ok ? "yes" : "NO"}`);
  if (!ok) process.exitCode = 1;
}

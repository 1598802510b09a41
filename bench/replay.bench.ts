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
 */
import { validateEvent } from "../features/contracts.ts";
import { Pseudonymizer } from "../features/pseudonymize.ts";
import { replayEvents, topicParamsResolver } from "../models/learnerState.ts";
import { type BktEloModels, scoreBktElo } from "../serving/learnerState.ts";
import { recompute } from "../serving/recompute.ts";
import { openStreamStores } from "../serving/streamStores.ts";
import { IncrementalUpdater, learnerEvent, rowsFromEvent } from "../serving/updater.ts";
import { DuckStore } from "../storage/duckdb.ts";
import type { LearnerRow, RawEventRow } from "../storage/rawEventStore.ts";
import { generateStreamEvents } from "../test/serving/streamEvents.ts";

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

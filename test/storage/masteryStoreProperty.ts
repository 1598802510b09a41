/**
 * Shared by the DuckDB (unit) and PostgreSQL (int) property tests of storage/masteryStore.ts: any
 * sequence of write batches — scores of exactly 0 and 1 (the first value of a list once typed the
 * whole list INTEGER), revisions up to 2^53 - 1, timestamps across the plausible range, unicode ids
 * and explanations — is stored without a throw and re-read exactly as a plain in-memory model says:
 * per key the newest revision wins, an older or equal one is skipped, and each source keeps the
 * score of the newest write that carried it.
 */
import fc from "fast-check";
import { expect } from "vitest";
import type { MasteryRow, MasteryStore, MasteryWrite } from "../../storage/masteryStore.ts";

// Valid unicode (no lone surrogates, no NUL: the event contract rejects both before any store).
const text = (max: number) =>
  fc
    .string({ unit: "grapheme", minLength: 1, maxLength: max })
    .filter((s) => !s.includes("\u0000") && s.trim() === s && s.length > 0);

const US_2000 = Date.UTC(2000, 0, 1) * 1000;
const US_2100 = Date.UTC(2100, 0, 1) * 1000;

const score = fc.oneof(
  fc.constant(1),
  fc.constant(0),
  fc.constant(1.0),
  fc.double({ min: 0, max: 1, noNaN: true }),
  fc.constant(0.999999999999),
);

export function writeArb(students: string[], topics: string[]): fc.Arbitrary<MasteryWrite> {
  return fc.record({
    studentKey: fc.constantFrom(...students),
    topicId: fc.constantFrom(...topics),
    rev: fc.oneof(
      fc.integer({ min: 1, max: 50 }),
      fc.constant(Number.MAX_SAFE_INTEGER),
      fc.nat().map((n) => n + 1),
    ),
    asOfUs: fc.integer({ min: US_2000 / 1000, max: US_2100 / 1000 }).map((ms) => ms * 1000),
    scores: fc.uniqueArray(
      fc.record({
        source: fc.constantFrom("bkt", "elo", "rules", "ml"),
        score,
        modelVersion: fc.oneof(fc.constant("default"), text(20)),
        explanation: text(60).map((t) => JSON.stringify({ note: t, big: 2 ** 53 - 1 })),
      }),
      { selector: (s) => s.source, minLength: 1, maxLength: 4 },
    ),
  });
}

/** Batches of writes over a few keys: unicode students and topics, one of each plain. */
export function batchesArb(): fc.Arbitrary<MasteryWrite[][]> {
  return fc
    .tuple(
      fc.uniqueArray(text(12), { minLength: 1, maxLength: 3 }),
      fc.uniqueArray(text(16), { minLength: 1, maxLength: 3 }),
    )
    .chain(([students, topics]) =>
      fc.array(
        fc.array(writeArb(["s-plain", ...students], ["T1", ...topics]), { minLength: 1, maxLength: 8 }),
        {
          minLength: 1,
          maxLength: 6,
        },
      ),
    );
}

interface Expected {
  rev: Map<string, number>;
  /** key \0 source -> the write's score, model version, as-of, explanation */
  rows: Map<string, { score: number; modelVersion: string; asOfUs: number; explanation: string }>;
}

/** The model: what the store must hold after `batches`, and how many keys each batch moves. */
export function expected(batches: MasteryWrite[][]): { model: Expected; moved: number[] } {
  const model: Expected = { rev: new Map(), rows: new Map() };
  const moved: number[] = [];
  for (const batch of batches) {
    const newest = new Map<string, MasteryWrite>();
    for (const w of batch) {
      const id = `${w.studentKey}\u0000${w.topicId}`;
      const prev = newest.get(id);
      if (prev === undefined || prev.rev < w.rev) newest.set(id, w);
    }
    let n = 0;
    for (const [id, w] of newest) {
      if ((model.rev.get(id) ?? 0) >= w.rev) continue;
      n++;
      model.rev.set(id, w.rev);
      for (const s of w.scores)
        model.rows.set(`${id}\u0000${s.source}`, {
          score: s.score,
          modelVersion: s.modelVersion,
          asOfUs: w.asOfUs,
          explanation: s.explanation,
        });
    }
    moved.push(n);
  }
  return { model, moved };
}

/** Writes every batch (no throw allowed) and compares the re-read rows with the model. */
export async function checkStore(store: MasteryStore, batches: MasteryWrite[][]): Promise<void> {
  const { model, moved } = expected(batches);
  const nowUs = Date.UTC(2026, 0, 1) * 1000;
  for (let i = 0; i < batches.length; i++) {
    expect(await store.write(batches[i]!, nowUs + i)).toBe(moved[i]);
  }
  const rows: MasteryRow[] = await store.all(["bkt", "elo", "rules", "ml"]);
  const got = new Map(
    rows.map((r) => [
      `${r.student_key}\u0000${r.topic_id}\u0000${r.score_source}`,
      {
        score: Number(r.mastery_score),
        modelVersion: r.model_version,
        asOfUs: Number(r.as_of_us),
        explanation: r.explanation,
      },
    ]),
  );
  expect(got).toEqual(model.rows);
  // The per-student read path agrees with the full read.
  const students = new Set([...model.rows.keys()].map((k) => k.split("\u0000")[0]!));
  for (const s of students) {
    const one = await store.forStudent(s);
    expect(one.length).toBe([...model.rows.keys()].filter((k) => k.split("\u0000")[0] === s).length);
    for (const r of one) expect(r.mastery_score).toBeGreaterThanOrEqual(0);
  }
}

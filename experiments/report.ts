import type { SqlStore } from "../storage/postgres.ts";
import { type ArmReport, analyzeExperiment, type ExperimentReport, type StudentOutcome } from "./analysis.ts";
import type { Experiment } from "./store.ts";

/**
 * Loads each exposed student's outcomes: arm and time of first exposure (experiment_exposures), quiz
 * attempts in the following 7 days (raw_events), and the first upward crossing of the mastery
 * threshold at or after first exposure (student_mastery_history; one score_source when given).
 */
export async function loadOutcomes(
  sql: SqlStore,
  e: Experiment,
  opts: { scoreSource?: string } = {},
): Promise<StudentOutcome[]> {
  const params = [
    e.id,
    e.config.masteryThreshold,
    ...(opts.scoreSource !== undefined ? [opts.scoreSource] : []),
  ];
  const rows = await sql.all<{
    student_key: string;
    arm: string;
    t0: Date;
    attempts: unknown;
    correct: unknown;
    mastered_at: Date | null;
  }>(
    `WITH ranked AS (
       SELECT student_key, arm, served_at,
              ROW_NUMBER() OVER (PARTITION BY student_key ORDER BY served_at, arm) AS rn
       FROM experiment_exposures WHERE experiment_id = $1
     ), first_exposure AS (
       SELECT student_key, arm, served_at AS t0 FROM ranked WHERE rn = 1
     ), quiz AS (
       SELECT f.student_key,
              COUNT(DISTINCT q.event_id) AS attempts,
              COUNT(DISTINCT CASE WHEN q.is_correct THEN q.event_id END) AS correct
       FROM first_exposure f
       JOIN raw_events q ON q.student_key = f.student_key AND q.type = 'quiz_attempt'
        AND q.ts >= f.t0 AND q.ts < f.t0 + INTERVAL '7 days'
       GROUP BY f.student_key
     ), hist AS (
       SELECT h.student_key, h.as_of, h.mastery_score,
              LAG(h.mastery_score) OVER (
                PARTITION BY h.student_key, h.topic_id, h.score_source ORDER BY h.as_of, h.recorded_at) AS prev
       FROM student_mastery_history h
       WHERE h.student_key IN (SELECT student_key FROM first_exposure)
       ${opts.scoreSource !== undefined ? "AND h.score_source = $3" : ""}
     ), crossing AS (
       SELECT f.student_key, MIN(h.as_of) AS mastered_at
       FROM first_exposure f
       JOIN hist h ON h.student_key = f.student_key AND h.as_of >= f.t0
        AND h.mastery_score >= $2 AND (h.prev IS NULL OR h.prev < $2)
       GROUP BY f.student_key
     )
     SELECT f.student_key, f.arm, f.t0, COALESCE(q.attempts, 0) AS attempts, COALESCE(q.correct, 0) AS correct,
            c.mastered_at
     FROM first_exposure f
     LEFT JOIN quiz q ON q.student_key = f.student_key
     LEFT JOIN crossing c ON c.student_key = f.student_key
     ORDER BY f.student_key`,
    params,
  );
  return rows.map((r) => ({
    arm: r.arm,
    firstExposure: r.t0.getTime(),
    quizAttempts: Number(r.attempts),
    quizCorrect: Number(r.correct),
    masteredAt: r.mastered_at === null ? null : r.mastered_at.getTime(),
  }));
}

export async function experimentReport(
  sql: SqlStore,
  e: Experiment,
  opts: { asOf?: Date; scoreSource?: string; bootstrapResamples?: number } = {},
): Promise<ExperimentReport> {
  const students = await loadOutcomes(
    sql,
    e,
    opts.scoreSource !== undefined ? { scoreSource: opts.scoreSource } : {},
  );
  return analyzeExperiment(e, students, (opts.asOf ?? new Date()).getTime(), {
    ...(opts.bootstrapResamples !== undefined ? { bootstrapResamples: opts.bootstrapResamples } : {}),
  });
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a");
const pts = (x: number): string =>
  Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}` : "n/a";
const days = (x: number | null): string =>
  x === null ? "not reached" : Number.isFinite(x) ? `${x.toFixed(1)} d` : "n/a";
const ddays = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(2)} d` : "n/a");

/** Students exposed over all arms; 0 means there is nothing to chart or test yet. */
const exposedTotal = (r: ExperimentReport): number => r.arms.reduce((n, a) => n + a.exposed, 0);

const NO_EXPOSURES =
  "no student exposed yet, nothing to test (students are counted once they are served a score from an arm)";

/**
 * The verdict as a bold label and the rest of the summary. The summary often starts with the label's
 * own words ("not yet conclusive: ..."), which are then not repeated.
 */
function verdictParts(r: ExperimentReport): { label: string; rest: string } {
  const label = r.srm.flagged ? "Sample ratio mismatch" : r.conclusive ? "Conclusive" : "Not yet conclusive";
  const repeats = r.summary.toLowerCase().startsWith(label.toLowerCase());
  return { label, rest: repeats ? r.summary.slice(label.length) : `: ${r.summary}` };
}

export function renderText(r: ExperimentReport): string {
  const lines: string[] = [];
  lines.push(
    `Experiment ${r.experiment.id} "${r.experiment.name}" (${r.experiment.status}), control ${r.experiment.control}`,
  );
  lines.push(
    `as of ${r.asOf}; started ${r.experiment.startAt}${r.experiment.endAt ? `, ends ${r.experiment.endAt}` : ""}`,
  );
  lines.push("");
  lines.push(
    `${"arm".padEnd(14)} ${"share".padStart(6)} ${"exposed".padStart(8)} ${"n(acc)".padStart(7)} ${"planned".padStart(8)} ${"accuracy".padStart(9)} ${"diff pts [95% CI]".padStart(24)} ${"mastered".padStart(9)} ${"cens.".padStart(6)} ${"median".padStart(12)} ${"RMST".padStart(7)} ${"diff [95% CI]".padStart(28)}`,
  );
  for (const a of r.arms) {
    const acc = a.accuracyVsControl;
    const m = a.masteryVsControl;
    lines.push(
      `${a.arm.padEnd(14)} ${pct(a.plannedShare).padStart(6)} ${String(a.exposed).padStart(8)} ${String(a.accuracy.students).padStart(7)} ${String(a.plannedStudents).padStart(8)} ${pct(a.accuracy.mean).padStart(9)} ${(acc ? `${pts(acc.diff)} [${pts(acc.lo)}, ${pts(acc.hi)}]` : "-").padStart(24)} ${String(a.mastery.mastered).padStart(9)} ${String(a.mastery.censored).padStart(6)} ${days(a.mastery.medianDays).padStart(12)} ${days(a.mastery.rmstDays).padStart(7)} ${(m ? `${ddays(m.diff)} [${ddays(m.lo)}, ${ddays(m.hi)}]` : "-").padStart(28)}`,
    );
  }
  lines.push("");
  for (const a of r.arms) if (!a.isControl) lines.push(`${a.arm}: ${a.verdict}`);
  lines.push(
    exposedTotal(r) === 0
      ? `sample-ratio check: ${NO_EXPOSURES}`
      : `sample-ratio check: chi2 = ${r.srm.chi2.toFixed(3)}, df = ${r.srm.df}, p = ${Number.isFinite(r.srm.p) ? r.srm.p.toPrecision(3) : "n/a"} (observed ${r.srm.observed.join("/")} vs expected ${r.srm.expected.map((x) => x.toFixed(1)).join("/")})${r.srm.flagged ? "  ** SRM FLAGGED **" : ""}`,
  );
  lines.push(`verdict: ${r.summary}`);
  lines.push("");
  lines.push("methods:");
  for (const m of r.methods) lines.push(`  - ${m}`);
  return lines.join("\n");
}

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

interface Bar {
  label: string;
  value: number;
  lo?: number;
  hi?: number;
  note?: string;
  highlight?: boolean;
}

/** Horizontal bars with optional interval whiskers, as inline SVG (no scripts, no external assets). */
function svgBars(title: string, bars: Bar[], fmt: (x: number) => string, max?: number): string {
  const w = 640;
  const left = 140;
  const right = 150;
  const rowH = 30;
  const h = 30 + bars.length * rowH;
  const finite = bars.flatMap((b) => [b.value, b.hi ?? b.value]).filter(Number.isFinite);
  const top = max ?? Math.max(1e-9, ...finite) * 1.1;
  const x = (v: number): number => left + (Math.max(0, Math.min(top, v)) / top) * (w - left - right);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" role="img" aria-label="${esc(title)}">`,
    `<text x="0" y="16" font-size="13" font-weight="bold">${esc(title)}</text>`,
  ];
  bars.forEach((b, i) => {
    const y = 26 + i * rowH;
    const v = Number.isFinite(b.value) ? b.value : 0;
    parts.push(`<text x="${left - 8}" y="${y + 15}" font-size="12" text-anchor="end">${esc(b.label)}</text>`);
    parts.push(
      `<rect x="${left}" y="${y + 3}" width="${(x(v) - left).toFixed(1)}" height="${rowH - 10}" fill="${b.highlight ? "#c0392b" : "#4a7fb5"}"/>`,
    );
    if (b.lo !== undefined && b.hi !== undefined && Number.isFinite(b.lo) && Number.isFinite(b.hi)) {
      const cy = y + rowH / 2 - 2;
      parts.push(
        `<line x1="${x(b.lo).toFixed(1)}" x2="${x(b.hi).toFixed(1)}" y1="${cy}" y2="${cy}" stroke="#222" stroke-width="1.5"/>`,
        `<line x1="${x(b.lo).toFixed(1)}" x2="${x(b.lo).toFixed(1)}" y1="${cy - 5}" y2="${cy + 5}" stroke="#222"/>`,
        `<line x1="${x(b.hi).toFixed(1)}" x2="${x(b.hi).toFixed(1)}" y1="${cy - 5}" y2="${cy + 5}" stroke="#222"/>`,
      );
    }
    parts.push(
      `<text x="${w - right + 8}" y="${y + 15}" font-size="12">${esc(fmt(b.value))}${b.note ? ` ${esc(b.note)}` : ""}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("");
}

function armRow(a: ArmReport): string {
  const acc = a.accuracyVsControl;
  const m = a.masteryVsControl;
  const cells = [
    a.arm + (a.isControl ? " (control)" : ""),
    pct(a.plannedShare),
    String(a.exposed),
    `${a.accuracy.students} / ${a.plannedStudents}`,
    pct(a.accuracy.mean),
    acc ? `${pts(acc.diff)} pts [${pts(acc.lo)}, ${pts(acc.hi)}], p = ${acc.p.toPrecision(3)}` : "-",
    `${a.mastery.mastered} / ${a.mastery.censored}`,
    days(a.mastery.medianDays),
    days(a.mastery.rmstDays),
    m ? `${ddays(m.diff)} [${ddays(m.lo)}, ${ddays(m.hi)}]` : "-",
    a.verdict,
  ];
  return `<tr>${cells.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`;
}

/** A self-contained HTML page (inline CSS and SVG; no scripts, no CDN). */
export function renderHtml(r: ExperimentReport): string {
  const empty = exposedTotal(r) === 0;
  const acc = svgBars(
    "Next-week quiz accuracy (mean ± 1.96 SE)",
    r.arms.map((a) => {
      const se = a.accuracy.sd / Math.sqrt(a.accuracy.students);
      return {
        label: a.arm,
        value: a.accuracy.mean,
        lo: a.accuracy.mean - 1.96 * se,
        hi: a.accuracy.mean + 1.96 * se,
        note: `n=${a.accuracy.students}`,
      };
    }),
    pct,
    1,
  );
  const rmst = svgBars(
    `Restricted mean time to mastery over ${r.config.rmstHorizonDays} days (lower is faster)`,
    r.arms.map((a) => ({ label: a.arm, value: a.mastery.rmstDays, note: `${a.mastery.mastered} mastered` })),
    (x) => days(x),
    r.config.rmstHorizonDays,
  );
  const progress = svgBars(
    "Sample size: students with a complete week and >= 1 quiz, vs planned",
    r.arms.map((a) => ({
      label: a.arm,
      value: a.plannedStudents > 0 ? a.accuracy.students / a.plannedStudents : Number.NaN,
      note: `${a.accuracy.students} / ${a.plannedStudents}`,
      highlight: a.accuracy.students < a.plannedStudents,
    })),
    pct,
    1,
  );
  const verdictColor = r.srm.flagged ? "#c0392b" : r.conclusive ? "#1e7d32" : "#b7791f";
  const verdict = verdictParts(r);
  // No exposure yet: no empty charts and no chi-square of zero counts, one sentence instead.
  const srmLine = empty
    ? `<p class="empty">Sample-ratio check: ${esc(NO_EXPOSURES)}.</p>`
    : `<p>Sample-ratio check: chi² = ${r.srm.chi2.toFixed(3)}, df = ${r.srm.df}, p = ${Number.isFinite(r.srm.p) ? r.srm.p.toPrecision(3) : "n/a"}; observed ${esc(r.srm.observed.join(" / "))} vs expected ${esc(r.srm.expected.map((x) => x.toFixed(1)).join(" / "))}${r.srm.flagged ? " — <strong>flagged</strong>" : ""}.</p>`;
  const charts = empty
    ? `<p class="empty">No charts yet: no student of this experiment has been exposed as of ${esc(r.asOf)}.</p>`
    : `${progress}\n${acc}\n${rmst}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Experiment ${esc(r.experiment.id)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px}
th{background:#f3f3f3}.verdict{padding:10px 14px;border-left:6px solid ${verdictColor};background:#fafafa;margin:12px 0}
.small{color:#555;font-size:12px}.empty{color:#555;font-style:italic}
</style></head><body>
<h1>Experiment ${esc(r.experiment.id)}: ${esc(r.experiment.name)}</h1>
<p class="small">status ${esc(r.experiment.status)} · control ${esc(r.experiment.control)} · started ${esc(r.experiment.startAt)}${r.experiment.endAt ? ` · ends ${esc(r.experiment.endAt)}` : ""} · as of ${esc(r.asOf)}</p>
<div class="verdict"><strong>${verdict.label}</strong>${esc(verdict.rest)}</div>
<table><tr><th>arm</th><th>share</th><th>exposed</th><th>n (acc) / planned</th><th>accuracy</th><th>diff vs control</th><th>mastered / censored</th><th>median TTM</th><th>RMST</th><th>RMST diff</th><th>verdict</th></tr>
${r.arms.map(armRow).join("\n")}
</table>
${srmLine}
${charts}
<h2>Methods</h2><ul>${r.methods.map((m) => `<li>${esc(m)}</li>`).join("")}</ul>
</body></html>
`;
}

/**
 * The drift report: JSON plus one self-contained HTML page (inline CSS and SVG charts, no scripts,
 * no CDN): PSI per feature against the thresholds, reference-vs-current histograms, alerting
 * segments, live performance per model version and arm with a daily AUC chart.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CategoricalDrift, NumericDrift } from "../models/drift.ts";
import type { MonitorTickResult } from "./loop.ts";

const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
const f = (x: number | undefined, d = 3): string =>
  x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(d);

function psiBars(
  items: { name: string; psi: number; status: string }[],
  warn: number,
  alert: number,
): string {
  const rowH = 18;
  const w = 640;
  const left = 220;
  const max = Math.max(alert * 1.5, ...items.map((i) => (Number.isFinite(i.psi) ? i.psi : 0)));
  const x = (v: number) => left + ((w - left - 20) * Math.min(v, max)) / max;
  const h = items.length * rowH + 30;
  const bars = items
    .map((it, i) => {
      const y = 10 + i * rowH;
      const color = it.status === "alert" ? "#c0392b" : it.status === "warn" ? "#e67e22" : "#2e86c1";
      return `<text x="${left - 6}" y="${y + 12}" text-anchor="end" font-size="11">${esc(it.name)}</text>
<rect x="${left}" y="${y + 2}" width="${Math.max(0, x(Number.isFinite(it.psi) ? it.psi : 0) - left).toFixed(1)}" height="${rowH - 6}" fill="${color}"/>
<text x="${x(Number.isFinite(it.psi) ? it.psi : 0) + 4}" y="${y + 12}" font-size="10">${f(it.psi)}</text>`;
    })
    .join("\n");
  const line = (v: number, label: string, c: string) =>
    `<line x1="${x(v)}" x2="${x(v)}" y1="5" y2="${h - 18}" stroke="${c}" stroke-dasharray="4 3"/><text x="${x(v)}" y="${h - 5}" font-size="10" text-anchor="middle">${label} ${v}</text>`;
  return `<svg width="${w}" height="${h}" role="img" aria-label="PSI per feature">${bars}${line(warn, "warn", "#e67e22")}${line(alert, "alert", "#c0392b")}</svg>`;
}

function histogram(name: string, d: NumericDrift | CategoricalDrift): string {
  const labels =
    "categories" in d
      ? d.categories
      : d.referenceShare.map((_, i) =>
          i === 0
            ? `≤${f(d.edges[0], 2)}`
            : i === d.edges.length
              ? `>${f(d.edges[i - 1], 2)}`
              : `≤${f(d.edges[i], 2)}`,
        );
  const n = labels.length;
  const w = Math.max(260, n * 34 + 40);
  const h = 150;
  const max = Math.max(...d.referenceShare, ...d.currentShare, 1e-9);
  const bw = (w - 40) / n;
  const y = (v: number) => 110 - (100 * v) / max;
  const bars = labels
    .map((lab, i) => {
      const x0 = 30 + i * bw;
      const r = d.referenceShare[i] ?? 0;
      const c = d.currentShare[i] ?? 0;
      return `<rect x="${x0 + 2}" y="${y(r)}" width="${bw / 2 - 3}" height="${110 - y(r)}" fill="#95a5a6"><title>reference ${f(r)}</title></rect>
<rect x="${x0 + bw / 2}" y="${y(c)}" width="${bw / 2 - 3}" height="${110 - y(c)}" fill="#2e86c1"><title>current ${f(c)}</title></rect>
<text x="${x0 + bw / 2}" y="124" font-size="8" text-anchor="middle">${esc(lab.slice(0, 9))}</text>`;
    })
    .join("\n");
  return `<figure><svg width="${w}" height="${h}" role="img" aria-label="${esc(name)} histogram"><line x1="28" x2="${w - 8}" y1="110" y2="110" stroke="#333"/>${bars}</svg><figcaption>${esc(name)}: PSI ${f(d.psi)}, JS ${f(d.js)} (grey = reference, blue = current)</figcaption></figure>`;
}

function aucLines(series: { name: string; points: { day: string; auc: number }[] }[]): string {
  const days = [...new Set(series.flatMap((s) => s.points.map((p) => p.day)))].sort();
  if (days.length < 2) return "<p>(fewer than two days of labels: no chart)</p>";
  const w = 640;
  const h = 200;
  const x = (d: string) => 40 + ((w - 60) * days.indexOf(d)) / (days.length - 1);
  const y = (a: number) => 170 - 150 * Math.max(0, Math.min(1, (a - 0.4) / 0.6));
  const colors = ["#2e86c1", "#c0392b", "#27ae60", "#8e44ad", "#e67e22"];
  const lines = series
    .map((s, i) => {
      const pts = s.points
        .filter((p) => Number.isFinite(p.auc))
        .map((p) => `${x(p.day).toFixed(1)},${y(p.auc).toFixed(1)}`);
      const c = colors[i % colors.length]!;
      return `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.join(" ")}"/><text x="${w - 10}" y="${20 + 14 * i}" font-size="11" text-anchor="end" fill="${c}">${esc(s.name)}</text>`;
    })
    .join("\n");
  const ticks = [0.5, 0.6, 0.7, 0.8, 0.9, 1]
    .map(
      (a) =>
        `<text x="34" y="${y(a) + 3}" font-size="9" text-anchor="end">${a}</text><line x1="38" x2="${w - 20}" y1="${y(a)}" y2="${y(a)}" stroke="#eee"/>`,
    )
    .join("");
  return `<svg width="${w}" height="${h}" role="img" aria-label="daily AUC">${ticks}${lines}<text x="40" y="195" font-size="9">${esc(days[0]!)}</text><text x="${w - 20}" y="195" font-size="9" text-anchor="end">${esc(days.at(-1)!)}</text></svg>`;
}

/** The HTML page for one monitor tick (drift check + live performance + retrain outcome). */
export function renderDriftHtml(r: MonitorTickResult, thresholds: { warn: number; alert: number }): string {
  const parts: string[] = [];
  const c = r.drift;
  parts.push(`<h1>Drift report</h1><p>Generated for ${esc(r.at)}.</p>`);
  if (c === null) parts.push(`<p class="bad">No drift check: ${esc(r.driftError ?? "unknown error")}</p>`);
  else {
    parts.push(
      `<p class="${c.decision.drift ? "bad" : "good"}"><b>${c.decision.drift ? "DRIFT" : "No drift"}</b> — ${c.decision.testsRun} tests, ${esc(c.decision.correction)} correction at alpha ${c.decision.alpha}.</p>`,
      `<ul>${c.decision.reasons.map((x) => `<li>${esc(x)}</li>`).join("")}</ul>`,
      `<p>Reference: ${esc(c.reference.label)} (${esc(c.reference.from ?? "")} .. ${esc(c.reference.to ?? "")}, ${c.reference.rows} rows). Current: ${esc(c.current.from ?? "")} .. ${esc(c.current.to ?? "")}, ${c.current.rows} rows.</p>`,
      "<h2>PSI over all rows</h2>",
      psiBars(
        c.comparisons
          .filter((x) => x.dimension === "all")
          .map((x) => ({ name: x.feature, psi: x.psi, status: x.status })),
        thresholds.warn,
        thresholds.alert,
      ),
      "<h2>All-rows comparisons</h2><table><tr><th>feature</th><th>n ref</th><th>n cur</th><th>PSI</th><th>noise</th><th>JS</th><th>test</th><th>stat</th><th>p adj</th><th>W/sd</th><th>status</th></tr>",
      ...c.comparisons
        .filter((x) => x.dimension === "all")
        .map(
          (x) =>
            `<tr class="${x.status}"><td>${esc(x.feature)}</td><td>${x.nReference}</td><td>${x.nCurrent}</td><td>${f(x.psi)}</td><td>${f(x.psiNoise)}</td><td>${f(x.js)}</td><td>${x.test}</td><td>${f(x.statistic)}</td><td>${f(x.pAdjusted, 4)}</td><td>${f(x.wassersteinScaled)}</td><td>${x.status}</td></tr>`,
        ),
      "</table>",
      "<h2>Segments with warnings or alerts</h2>",
    );
    const seg = c.comparisons.filter(
      (x) => x.dimension !== "all" && (x.status === "alert" || x.status === "warn"),
    );
    parts.push(
      seg.length === 0
        ? "<p>None.</p>"
        : `<table><tr><th>segment</th><th>feature</th><th>n ref</th><th>n cur</th><th>mean ref</th><th>mean cur</th><th>PSI</th><th>p adj</th><th>status</th></tr>${seg
            .map(
              (x) =>
                `<tr class="${x.status}"><td>${esc(`${x.dimension}=${x.segment}`)}</td><td>${esc(x.feature)}</td><td>${x.nReference}</td><td>${x.nCurrent}</td><td>${f(x.meanReference)}</td><td>${f(x.meanCurrent)}</td><td>${f(x.psi)}</td><td>${f(x.pAdjusted, 4)}</td><td>${x.status}</td></tr>`,
            )
            .join("")}</table>`,
      '<h2>Distributions (all rows)</h2><div class="grid">',
      ...Object.entries(c.global).map(([name, d]) => histogram(name, d)),
      "</div>",
    );
  }
  parts.push("<h2>Live performance</h2>");
  const perf = r.performance;
  if (perf === null || perf.versions.length === 0) parts.push("<p>No labelled scores in the window.</p>");
  else {
    parts.push(
      `<p>Labels ${esc(perf.window.from)} .. ${esc(perf.window.to)}, horizon ${perf.horizonDays} days.</p><table><tr><th>model version</th><th>source</th><th>labels</th><th>n</th><th>AUC</th><th>log-loss</th><th>ECE</th></tr>${perf.versions
        .map(
          (v) =>
            `<tr><td>${esc(v.modelVersion)}</td><td>${esc(v.scoreSource)}</td><td>${v.labelSource}</td><td>${v.n}</td><td>${f(v.auc)}</td><td>${f(v.logloss)}</td><td>${f(v.ece)}</td></tr>`,
        )
        .join("")}</table>`,
      aucLines(
        perf.versions
          .filter((v) => v.labelSource === "next_answer")
          .map((v) => ({ name: `${v.modelVersion} (${v.scoreSource})`, points: v.daily })),
      ),
    );
    if (perf.arms.length)
      parts.push(
        `<h3>Experiment arms</h3><table><tr><th>experiment</th><th>arm</th><th>model</th><th>n</th><th>AUC</th><th>log-loss</th><th>ECE</th></tr>${perf.arms
          .map(
            (a) =>
              `<tr><td>${esc(a.experimentId)}</td><td>${esc(a.arm)}</td><td>${esc(a.model)}</td><td>${a.n}</td><td>${f(a.auc)}</td><td>${f(a.logloss)}</td><td>${f(a.ece)}</td></tr>`,
          )
          .join("")}</table>`,
      );
  }
  const decayed = r.decay.filter((d) => d.decayed);
  parts.push(
    `<h2>Decay and retraining</h2><p>${decayed.length ? decayed.map((d) => esc(`${d.modelVersion}: ${d.reasons.join("; ")}`)).join("<br>") : "No decay verdict."}</p>`,
    `<p>Triggers: ${r.triggers.length ? r.triggers.map(esc).join("<br>") : "none"}</p>`,
    r.retrain === null
      ? "<p>No retrain run.</p>"
      : `<p>Retrain: <b>${r.retrain.status}</b> ${esc(r.retrain.modelName)} champion ${r.retrain.champion ?? "–"} challenger ${r.retrain.challenger ?? "–"}: ${esc(r.retrain.summary)}</p>`,
  );
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Mastery drift report</title><style>
body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 6px;font-size:12px;text-align:right}
th{background:#f4f6f7}td:first-child{text-align:left}tr.alert td{background:#fdecea}tr.warn td{background:#fef5e7}
.bad{color:#c0392b}.good{color:#1e8449}.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:11px}
</style></head><body>${parts.join("\n")}</body></html>
`;
}

/** Writes DIR/drift.json and DIR/drift.html; returns their paths. */
export function writeDriftReport(
  dir: string,
  r: MonitorTickResult,
  thresholds: { warn: number; alert: number },
): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, "drift.json");
  const html = join(dir, "drift.html");
  writeFileSync(
    json,
    `${JSON.stringify(r, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 1)}\n`,
  );
  writeFileSync(html, renderDriftHtml(r, thresholds));
  return { json, html };
}

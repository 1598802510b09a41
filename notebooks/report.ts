/**
 * A tiny self-contained HTML report writer for the notebooks: headings, paragraphs, tables and inline
 * SVG charts (line, scatter, bar, waterfall, reliability diagram, heatmap). No scripts, no CDN, no fonts:
 * the file opens offline. Every figure is a <figure data-figure="ID"> so tests can find it.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const W = 640;
const H = 320;
const M = { l: 56, r: 16, t: 16, b: 44 };
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];

export const esc = (s: string): string =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

/** Short number for labels: 3 significant digits, no exponent for ordinary magnitudes. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && (Math.abs(x) >= 1e6 || Math.abs(x) < 1e-3)) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}

interface Scale {
  (v: number): number;
  ticks: number[];
}

function linear(d0: number, d1: number, r0: number, r1: number): Scale {
  if (d1 === d0) {
    d0 -= 0.5;
    d1 += 0.5;
  }
  const f = ((v: number) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0)) as Scale;
  const step = niceStep((d1 - d0) / 5);
  f.ticks = [];
  for (let t = Math.ceil(d0 / step) * step; t <= d1 + step * 1e-9; t += step)
    f.ticks.push(Number(t.toFixed(10)));
  return f;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

function extent(xs: readonly number[], pad = 0): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const x of xs) {
    if (!Number.isFinite(x)) continue;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  if (lo > hi) return [0, 1];
  const d = (hi - lo) * pad;
  return [lo - d, hi + d];
}

function axes(x: Scale, y: Scale, xLabel: string, yLabel: string, xTicks = true): string {
  const out: string[] = [];
  const x0 = M.l;
  const y0 = H - M.b;
  out.push(`<line x1="${x0}" y1="${y0}" x2="${W - M.r}" y2="${y0}" stroke="#333"/>`);
  out.push(`<line x1="${x0}" y1="${M.t}" x2="${x0}" y2="${y0}" stroke="#333"/>`);
  for (const t of y.ticks) {
    const py = y(t);
    out.push(`<line x1="${x0 - 4}" y1="${py}" x2="${W - M.r}" y2="${py}" stroke="#eee"/>`);
    out.push(`<text x="${x0 - 6}" y="${py + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  if (xTicks) {
    for (const t of x.ticks) {
      out.push(`<text x="${x(t)}" y="${y0 + 16}" text-anchor="middle">${fmt(t)}</text>`);
    }
  }
  out.push(`<text x="${(x0 + W - M.r) / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(
    `<text x="14" y="${(M.t + y0) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(M.t + y0) / 2})">${esc(yLabel)}</text>`,
  );
  return out.join("");
}

const svg = (body: string, w = W, h = H): string =>
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" font-family="sans-serif" font-size="11">${body}</svg>`;

function legend(names: readonly string[]): string {
  return names
    .map(
      (n, i) =>
        `<rect x="${M.l + 10 + i * 130}" y="${M.t}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>` +
        `<text x="${M.l + 24 + i * 130}" y="${M.t + 9}">${esc(n)}</text>`,
    )
    .join("");
}

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface AxisOptions {
  xLabel: string;
  yLabel: string;
  yRange?: [number, number];
  xRange?: [number, number];
}

/** Lines through each series' points (sorted by x as given). */
export function lineChart(series: readonly Series[], o: AxisOptions): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const x = linear(...(o.xRange ?? extent(xs)), M.l, W - M.r);
  const y = linear(...(o.yRange ?? extent(ys, 0.05)), H - M.b, M.t);
  const lines = series.map(
    (s, i) =>
      `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${s.points
        .map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`)
        .join(" ")}"/>`,
  );
  return svg(axes(x, y, o.xLabel, o.yLabel) + lines.join("") + legend(series.map((s) => s.name)));
}

/** Points (capped at `maxPoints`, evenly thinned) with an optional y = x diagonal. */
export function scatterChart(
  points: readonly (readonly [number, number])[],
  o: AxisOptions & { diagonal?: boolean; maxPoints?: number },
): string {
  const x = linear(...(o.xRange ?? extent(points.map((p) => p[0]))), M.l, W - M.r);
  const y = linear(
    ...(o.yRange ??
      extent(
        points.map((p) => p[1]),
        0.05,
      )),
    H - M.b,
    M.t,
  );
  const step = Math.max(1, Math.ceil(points.length / (o.maxPoints ?? 2000)));
  const dots: string[] = [];
  for (let i = 0; i < points.length; i += step) {
    const [a, b] = points[i]!;
    dots.push(
      `<circle cx="${x(a).toFixed(1)}" cy="${y(b).toFixed(1)}" r="1.8" fill="${COLORS[0]}" fill-opacity="0.35"/>`,
    );
  }
  let diag = "";
  if (o.diagonal === true) {
    const lo = Math.max(x.ticks[0] ?? 0, y.ticks[0] ?? 0);
    const hi = Math.min(x.ticks.at(-1) ?? 1, y.ticks.at(-1) ?? 1);
    diag = `<line x1="${x(lo)}" y1="${y(lo)}" x2="${x(hi)}" y2="${y(hi)}" stroke="#999" stroke-dasharray="4 3"/>`;
  }
  return svg(axes(x, y, o.xLabel, o.yLabel) + diag + dots.join(""));
}

export interface Bar {
  label: string;
  /** One value per group (series); a single-group chart passes one value. */
  values: readonly number[];
}

/** Grouped vertical bars; `groups` names the series (legend shown when more than one). */
export function barChart(
  bars: readonly Bar[],
  o: { yLabel: string; groups?: readonly string[]; yRange?: [number, number] },
): string {
  const all = bars.flatMap((b) => b.values);
  const [lo, hi] = o.yRange ?? extent([0, ...all], 0.05);
  const y = linear(Math.min(0, lo), hi, H - M.b, M.t);
  const x = linear(0, 1, M.l, W - M.r);
  const nGroups = Math.max(1, ...bars.map((b) => b.values.length));
  const slot = (W - M.l - M.r) / Math.max(1, bars.length);
  const bw = (slot * 0.8) / nGroups;
  const out: string[] = [axes(x, y, "", o.yLabel, false)];
  bars.forEach((b, i) => {
    const x0 = M.l + i * slot + slot * 0.1;
    b.values.forEach((v, g) => {
      const top = y(Math.max(0, v));
      const h = Math.abs(y(v) - y(0));
      out.push(
        `<rect x="${(x0 + g * bw).toFixed(1)}" y="${top.toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[g % COLORS.length]}"><title>${esc(b.label)}: ${fmt(v, 4)}</title></rect>`,
      );
      if (bars.length * nGroups <= 24) {
        out.push(
          `<text x="${(x0 + g * bw + bw / 2).toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="9">${fmt(v)}</text>`,
        );
      }
    });
    const cx = x0 + (slot * 0.8) / 2;
    out.push(
      `<text x="${cx.toFixed(1)}" y="${H - M.b + 12}" text-anchor="end" font-size="9" transform="rotate(-25 ${cx.toFixed(1)} ${H - M.b + 12})">${esc(b.label)}</text>`,
    );
  });
  if (o.groups !== undefined && o.groups.length > 1) out.push(legend(o.groups));
  return svg(out.join(""));
}

/** Horizontal bars (long labels, e.g. feature names), largest first as given. */
export function hbarChart(bars: readonly { label: string; value: number }[], o: { xLabel: string }): string {
  const rowH = 18;
  const left = 190;
  const h = M.t + M.b + rowH * bars.length;
  const [lo, hi] = extent([0, ...bars.map((b) => b.value)]);
  const x = linear(lo, hi, left, W - M.r - 30);
  const out: string[] = [];
  bars.forEach((b, i) => {
    const yy = M.t + i * rowH;
    const x0 = x(Math.min(0, b.value));
    const w = Math.abs(x(b.value) - x(0));
    out.push(`<text x="${left - 6}" y="${yy + 12}" text-anchor="end">${esc(b.label)}</text>`);
    out.push(
      `<rect x="${x0.toFixed(1)}" y="${yy + 2}" width="${w.toFixed(1)}" height="${rowH - 5}" fill="${b.value >= 0 ? COLORS[0] : COLORS[1]}"/>`,
    );
    out.push(
      `<text x="${(Math.max(x(b.value), x(0)) + 4).toFixed(1)}" y="${yy + 12}">${fmt(b.value)}</text>`,
    );
  });
  out.push(`<line x1="${x(0)}" y1="${M.t}" x2="${x(0)}" y2="${h - M.b}" stroke="#333"/>`);
  out.push(`<text x="${(left + W) / 2}" y="${h - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  return svg(out.join(""), W, h);
}

/**
 * Waterfall: start at `base`, add each contribution in turn (green up, red down), end at the total.
 * The last bar's top is base + Σ contributions, drawn from the numbers given (not recomputed elsewhere).
 */
export function waterfallChart(
  base: number,
  steps: readonly { label: string; value: number }[],
  o: { yLabel: string; totalLabel?: string },
): string {
  const levels = [base];
  for (const s of steps) levels.push(levels.at(-1)! + s.value);
  const total = levels.at(-1)!;
  const y = linear(...extent([0, ...levels], 0.08), H - M.b, M.t);
  const x = linear(0, 1, M.l, W - M.r);
  const n = steps.length + 2;
  const slot = (W - M.l - M.r) / n;
  const out: string[] = [axes(x, y, "", o.yLabel, false)];
  const bar = (i: number, a: number, b: number, fill: string, label: string, text: string) => {
    const top = y(Math.max(a, b));
    const h = Math.max(1, Math.abs(y(a) - y(b)));
    const bx = M.l + i * slot + slot * 0.15;
    out.push(
      `<rect x="${bx.toFixed(1)}" y="${top.toFixed(1)}" width="${(slot * 0.7).toFixed(1)}" height="${h.toFixed(1)}" fill="${fill}"/>`,
    );
    out.push(
      `<text x="${(bx + slot * 0.35).toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="9">${text}</text>`,
    );
    const cx = bx + slot * 0.35;
    out.push(
      `<text x="${cx.toFixed(1)}" y="${H - M.b + 12}" text-anchor="end" font-size="9" transform="rotate(-25 ${cx.toFixed(1)} ${H - M.b + 12})">${esc(label)}</text>`,
    );
  };
  bar(0, 0, base, "#6b7280", "base", fmt(base));
  steps.forEach((s, i) => {
    bar(
      i + 1,
      levels[i]!,
      levels[i + 1]!,
      s.value >= 0 ? COLORS[2]! : COLORS[1]!,
      s.label,
      `${s.value >= 0 ? "+" : ""}${fmt(s.value)}`,
    );
  });
  bar(n - 1, 0, total, COLORS[0]!, o.totalLabel ?? "total", fmt(total));
  return svg(out.join(""));
}

export interface ReliabilityBin {
  /** Mean predicted probability in the bin. */
  meanPredicted: number;
  /** Observed fraction of positives in the bin. */
  observed: number;
  count: number;
}

/** Reliability diagram: observed vs predicted per bin (dot area ~ count), with the y = x diagonal. */
export function reliabilityDiagram(
  series: readonly { name: string; bins: readonly ReliabilityBin[] }[],
): string {
  const x = linear(0, 1, M.l, W - M.r);
  const y = linear(0, 1, H - M.b, M.t);
  const out: string[] = [axes(x, y, "mean predicted probability", "observed frequency")];
  out.push(
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="#999" stroke-dasharray="4 3"/>`,
  );
  const maxCount = Math.max(1, ...series.flatMap((s) => s.bins.map((b) => b.count)));
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const bins = s.bins.filter((b) => b.count > 0);
    out.push(
      `<polyline fill="none" stroke="${c}" stroke-width="1.5" points="${bins.map((b) => `${x(b.meanPredicted).toFixed(1)},${y(b.observed).toFixed(1)}`).join(" ")}"/>`,
    );
    for (const b of bins) {
      const r = 2 + 6 * Math.sqrt(b.count / maxCount);
      out.push(
        `<circle cx="${x(b.meanPredicted).toFixed(1)}" cy="${y(b.observed).toFixed(1)}" r="${r.toFixed(1)}" fill="${c}" fill-opacity="0.5"><title>n=${b.count}</title></circle>`,
      );
    }
  });
  out.push(legend(series.map((s) => s.name)));
  return svg(out.join(""));
}

/** Heatmap of values[row][col] (NaN = blank), white -> blue over [min, max]. */
export function heatmap(
  rows: readonly string[],
  cols: readonly string[],
  values: readonly (readonly number[])[],
  o: { title?: string } = {},
): string {
  const left = 90;
  const top = 60;
  const cw = Math.max(8, Math.min(40, (W - left - 10) / Math.max(1, cols.length)));
  const ch = Math.max(8, Math.min(24, 400 / Math.max(1, rows.length)));
  const [lo, hi] = extent(values.flat());
  const out: string[] = [];
  cols.forEach((c, j) => {
    const cx = left + j * cw + cw / 2;
    out.push(
      `<text x="${cx}" y="${top - 4}" font-size="9" transform="rotate(-45 ${cx} ${top - 4})">${esc(c)}</text>`,
    );
  });
  rows.forEach((r, i) => {
    out.push(
      `<text x="${left - 4}" y="${top + i * ch + ch * 0.7}" text-anchor="end" font-size="9">${esc(r)}</text>`,
    );
    cols.forEach((_, j) => {
      const v = values[i]?.[j] ?? Number.NaN;
      const t = Number.isFinite(v) ? (v - lo) / (hi - lo || 1) : -1;
      const fill =
        t < 0
          ? "#fff"
          : `rgb(${Math.round(255 - 218 * t)},${Math.round(255 - 156 * t)},${Math.round(255 - 20 * t)})`;
      out.push(
        `<rect x="${left + j * cw}" y="${top + i * ch}" width="${cw - 1}" height="${ch - 1}" fill="${fill}"><title>${esc(rows[i]!)} × ${esc(cols[j]!)}: ${Number.isFinite(v) ? fmt(v, 4) : "n/a"}</title></rect>`,
      );
    });
  });
  const h = top + rows.length * ch + 30;
  out.push(
    `<text x="${left}" y="${h - 10}">${esc(o.title ?? "")} range ${fmt(lo)} (white) .. ${fmt(hi)} (blue)</text>`,
  );
  return svg(out.join(""), Math.max(W, left + cols.length * cw + 20), h);
}

/** Histogram counts of `xs` over [lo, hi) in `bins` equal bins (the last bin includes hi). */
export function histogram(
  xs: ArrayLike<number>,
  lo: number,
  hi: number,
  bins: number,
): { edges: number[]; counts: number[] } {
  const counts = new Array<number>(bins).fill(0);
  const w = (hi - lo) / bins;
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i]!;
    if (!(v >= lo && v <= hi)) continue;
    counts[Math.min(bins - 1, Math.floor((v - lo) / w))]! += 1;
  }
  return { edges: Array.from({ length: bins + 1 }, (_, i) => lo + i * w), counts };
}

/** The report being built. */
export class Report {
  private readonly parts: string[] = [];
  private readonly figures: string[] = [];

  constructor(
    readonly name: string,
    readonly title: string,
  ) {}

  h2(text: string): this {
    this.parts.push(`<h2>${esc(text)}</h2>`);
    return this;
  }

  p(text: string): this {
    this.parts.push(`<p>${esc(text)}</p>`);
    return this;
  }

  /** A table of computed numbers (numbers formatted with `fmt`). */
  table(headers: readonly string[], rows: readonly (readonly (string | number | null)[])[]): this {
    const td = (v: string | number | null) =>
      `<td>${v === null ? "–" : typeof v === "number" ? fmt(v, 4) : esc(v)}</td>`;
    this.parts.push(
      `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows
        .map((r) => `<tr>${r.map(td).join("")}</tr>`)
        .join("")}</tbody></table>`,
    );
    return this;
  }

  /** A figure: an SVG string from one of the chart functions, with a caption. */
  figure(id: string, caption: string, svgText: string): this {
    this.figures.push(id);
    this.parts.push(
      `<figure data-figure="${esc(id)}">${svgText}<figcaption>${esc(caption)}</figcaption></figure>`,
    );
    return this;
  }

  /** A pre-rendered HTML block (e.g. experiments/report.ts output), embedded as is. */
  raw(html: string): this {
    this.parts.push(html);
    return this;
  }

  figureIds(): readonly string[] {
    return this.figures;
  }

  html(): string {
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(this.title)}</title><style>
body{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#111}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f3f4f6}figure{margin:1em 0}figcaption{font-size:.9em;color:#444}
</style></head><body><h1>${esc(this.title)}</h1><p>Generated ${esc(new Date().toISOString())} by notebooks/${esc(this.name)}.ts</p>
${this.parts.join("\n")}</body></html>\n`;
  }

  /** Writes `<outDir>/<name>.html` and returns its path. */
  write(outDir: string): string {
    const path = resolve(join(outDir, `${this.name}.html`));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, this.html());
    return path;
  }
}

/** `--out DIR` (default out/notebooks) and other `--flag value` / `--flag` arguments of a notebook. */
export function notebookArgs(argv: readonly string[] = process.argv.slice(2)): {
  out: string;
  get(name: string): string | undefined;
  has(name: string): boolean;
} {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return { out: get("out") ?? join("out", "notebooks"), get, has: (name) => argv.includes(`--${name}`) };
}

/** Integer flag with a default; throws naming the flag when it is not a positive integer. */
export function intFlag(value: string | undefined, name: string, dflt: number): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer (got ${value})`);
  return n;
}

import { api, fmt, h, heatColor, page, query, showError, signed } from "./common.js";

const OVERRIDE = "teacher_override";
const MAX_WEEKS = 12;
const DAY = 86_400_000;

const c = page();
const id = query("id") ?? "";
const base = `/mastery/${encodeURIComponent(id)}`;
let chart = null;
let histories = new Map();

/** Monday 00:00 UTC of the week containing `iso`, as epoch ms. */
function weekOf(iso) {
  const d = new Date(iso);
  const day = (d.getUTCDay() + 6) % 7;
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - day * DAY;
}
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

// The server's default source order (config/serving.yaml score_sources), used only to tell which
// model source an override replaced.
const SOURCE_ORDER = ["blend", "ml", "bkt", "rule_based", "elo"];

/**
 * The model source whose history stands for a topic's served series: the served source when it has
 * history, else (an override, or a registry model that records no history) the first source in the
 * server's order that has some.
 */
function modelSource(topic, history) {
  const recorded = new Set(history.map((e) => e.scoreSource));
  if (topic.scoreSource !== OVERRIDE && recorded.has(topic.scoreSource)) return topic.scoreSource;
  return SOURCE_ORDER.find((s) => recorded.has(s)) ?? [...recorded].find((s) => s !== OVERRIDE) ?? null;
}

/** The entries of the series the student is served: the topic's model source plus overrides, oldest first. */
function servedSeries(topic, history) {
  const source = modelSource(topic, history);
  const own = history.filter((e) => e.scoreSource === source || e.scoreSource === OVERRIDE);
  return [...own].sort((a, b) => a.asOf.localeCompare(b.asOf) || a.recordedAt.localeCompare(b.recordedAt));
}

/** The served score as a series point (the last column of the heatmap shows it). */
const servedPoint = (t) => ({
  score: t.score,
  scoreSource: t.scoreSource,
  modelVersion: t.modelVersion,
  asOf: t.asOf,
  served: true,
});

function factorsText(explanation) {
  const f = explanation?.factors ?? [];
  return f.map((x) => `${x.label ?? x.name} ${signed(x.contribution)} (value ${fmt(x.value, 2)})`).join("; ");
}

/** Evidence behind a served score, for the tooltip: attempts, days since the last event, the 80% interval. */
function evidenceText(t) {
  if (!t.evidence) return t.scoreSource;
  const days =
    t.evidence.daysSinceLast === null
      ? "no events"
      : `last event ${fmt(t.evidence.daysSinceLast, 1)} days before`;
  const interval = t.interval ? `; 80% interval ${fmt(t.interval.lo, 2)}–${fmt(t.interval.hi, 2)}` : "";
  const p = typeof t.pCorrect === "number" ? `; P(correct on a next item) ${fmt(t.pCorrect, 2)}` : "";
  return `${t.evidence.kind}: ${t.evidence.attempts} quiz attempts, ${days}${interval}${p}`;
}

function renderTopics(topics) {
  const rows = topics.map((t) =>
    h(
      "tr",
      { dataset: { topic: t.topicId } },
      h("td", {}, t.topicId),
      h("td", {}, t.name ?? ""),
      h(
        "td",
        {
          // Issue 16: a score without quiz evidence is not presented like a measured one (hatched, labelled).
          class: `num score${t.evidence && t.evidence.kind !== "measured" ? " no-evidence" : ""}`,
          dataset: { score: String(t.score), evidence: t.evidence?.kind ?? "" },
          title: evidenceText(t),
        },
        fmt(t.score, 3),
      ),
      h(
        "td",
        { class: "evidence" },
        t.interval ? `[${fmt(t.interval.lo, 2)}–${fmt(t.interval.hi, 2)}] ` : "",
        t.evidence === null || t.evidence === undefined
          ? ""
          : t.evidence.kind === "measured"
            ? `${t.evidence.attempts} attempts`
            : h(
                "span",
                { class: "evidence-label" },
                t.evidence.kind === "prior" ? "no evidence yet" : "no quiz evidence yet",
              ),
      ),
      h("td", { class: t.scoreSource === OVERRIDE ? "source override" : "source" }, t.scoreSource),
      h("td", { class: "nowrap" }, t.modelVersion),
      h("td", { class: "why" }, factorsText(t.explanation)),
    ),
  );
  document.querySelector("#topics tbody").replaceChildren(...rows);
}

/**
 * The student's last activity: the latest as-of of any served score or recorded history entry. The
 * heatmap ends at that week (not at today), so a student who stopped in September is not shown as
 * twelve weeks of faded carry-overs.
 */
function lastActivity(topics) {
  let last = null;
  for (const t of topics) {
    if (last === null || t.asOf > last) last = t.asOf;
    for (const e of histories.get(t.topicId) ?? []) if (e.asOf > last) last = e.asOf;
  }
  return last;
}

/**
 * Topic x week: the last value of the served series (model source + overrides) in each week, up
 * to `anchor` (end of the chosen as-of day, or the last activity). When the anchor is at or after a
 * topic's served as-of, the served score itself is the topic's latest point, so the last column is
 * exactly what GET /mastery serves (also for a registry model, which records no history).
 */
function renderHeatmap(topics, chosenAsOf) {
  const last = lastActivity(topics);
  const anchorMs = chosenAsOf !== null ? Date.parse(`${chosenAsOf}T23:59:59.999Z`) : Date.parse(last ?? "");
  const note = document.getElementById("heatmap-anchor");
  if (!Number.isFinite(anchorMs)) {
    note.textContent = "No scores yet.";
    document.querySelector("#heatmap thead").replaceChildren();
    document.querySelector("#heatmap tbody").replaceChildren();
    return;
  }
  const anchor = new Date(anchorMs).toISOString();
  note.textContent =
    chosenAsOf !== null
      ? `Weeks up to ${chosenAsOf} (chosen as-of; the last column is the value recorded by then).`
      : `Weeks up to the student's last activity, ${last.slice(0, 10)}; the last column is the served score.`;
  const hi = weekOf(anchor);
  const weeks = [];
  for (let i = MAX_WEEKS - 1; i >= 0; i--) weeks.push(hi - i * 7 * DAY);
  const series = topics.map((t) => {
    const s = servedSeries(t, histories.get(t.topicId) ?? []).filter((e) => e.asOf <= anchor);
    if (t.asOf <= anchor) s.push(servedPoint(t));
    return [t, s];
  });
  // Drop leading weeks where no topic has a value yet (a short history needs no empty columns).
  const first = Math.min(...series.flatMap(([, s]) => s.map((e) => weekOf(e.asOf))));
  const shown = weeks.filter((w) => w >= first || w === hi);
  document
    .querySelector("#heatmap thead")
    .replaceChildren(h("tr", {}, h("th", {}, "Topic"), ...shown.map((w) => h("th", {}, isoDay(w)))));
  const rows = series.map(([t, s]) => {
    const cells = shown.map((w) => {
      let latest = null;
      for (const e of s) if (weekOf(e.asOf) <= w) latest = e;
      if (latest === null) return h("td", { class: "empty" }, "");
      const carried = weekOf(latest.asOf) < w;
      return h(
        "td",
        {
          class: carried ? "carried" : "",
          style: `background:${heatColor(latest.score)}`,
          title: `${latest.served ? "served: " : ""}${latest.scoreSource} ${latest.modelVersion} as of ${latest.asOf}`,
          dataset: { score: String(latest.score), week: isoDay(w) },
        },
        fmt(latest.score),
      );
    });
    return h("tr", { dataset: { topic: t.topicId } }, h("th", {}, t.topicId), ...cells);
  });
  document.querySelector("#heatmap tbody").replaceChildren(...rows);
}

function renderHistory(topic) {
  const history = histories.get(topic.topicId) ?? [];
  const bySource = new Map();
  for (const e of [...history].sort((a, b) => a.asOf.localeCompare(b.asOf))) {
    const list = bySource.get(e.scoreSource) ?? [];
    list.push(e);
    bySource.set(e.scoreSource, list);
  }
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#8c564b"];
  const datasets = [...bySource].map(([source, list], i) => ({
    label: source,
    data: list.map((e) => ({ x: Date.parse(e.asOf), y: e.score })),
    borderColor: palette[i % palette.length],
    backgroundColor: palette[i % palette.length],
    // A new model version (or an override replacing the model) is drawn as a large triangle.
    pointStyle: list.map((e, j) =>
      j > 0 && list[j - 1].modelVersion !== e.modelVersion ? "triangle" : "circle",
    ),
    pointRadius: list.map((e, j) => (j > 0 && list[j - 1].modelVersion !== e.modelVersion ? 9 : 3)),
  }));
  const served = servedSeries(topic, history);
  const changes = [];
  for (let j = 1; j < served.length; j++) {
    if (served[j].modelVersion !== served[j - 1].modelVersion) {
      changes.push(
        h(
          "li",
          {},
          `${served[j].asOf.slice(0, 10)}: ${served[j - 1].modelVersion} → ${served[j].modelVersion} (${served[j].scoreSource})`,
        ),
      );
    }
  }
  document
    .getElementById("version-changes")
    .replaceChildren(
      ...(changes.length > 0 ? changes : [h("li", {}, "none in this topic's served history")]),
    );
  if (typeof Chart === "undefined") return;
  chart?.destroy();
  chart = new Chart(document.getElementById("history-chart"), {
    type: "line",
    data: { datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: {
        x: { type: "linear", ticks: { callback: (v) => isoDay(v) } },
        y: { min: 0, max: 1, title: { display: true, text: "mastery" } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: (ctx) => {
              const e = bySource.get(ctx.dataset.label)[ctx.dataIndex];
              return `${ctx.dataset.label} ${fmt(e.score, 3)} (${e.modelVersion})`;
            },
          },
        },
      },
    },
  });
}

function renderRecommendations(recs) {
  const items = recs.recommendations.map((r) =>
    h(
      "li",
      { dataset: { topic: r.topicId } },
      `${r.topicId} — ${r.reason === "weak" ? "weak" : `prerequisite of ${r.forTopic}`}, score ${fmt(r.score)}, ` +
        `target item difficulty ${fmt(r.targetDifficulty)} for P(success) ${fmt(r.targetSuccess)}`,
    ),
  );
  document
    .getElementById("recommendations")
    .replaceChildren(
      ...(items.length > 0 ? items : [h("li", {}, "nothing to recommend: every topic mastered")]),
    );
}

let topicsShown = [];

async function load() {
  // Two requests in parallel, whatever the number of topics: the scores with every served topic's
  // history (include=history), and the recommendations.
  const [mastery, recs] = await Promise.all([
    api(`${base}?include=history`),
    api(`/recommendations/${encodeURIComponent(id)}`),
  ]);
  const topics = mastery.topics;
  topicsShown = topics;
  histories = new Map(mastery.histories.map((t) => [t.topicId, t.history]));
  renderTopics(topics);
  renderHeatmap(topics, chosenAsOf());
  renderRecommendations(recs);
  const select = document.getElementById("topic-select");
  const previous = select.value;
  const options = () => topics.map((t) => h("option", { value: t.topicId }, `${t.topicId} ${t.name ?? ""}`));
  select.replaceChildren(...options());
  if (previous && topics.some((t) => t.topicId === previous)) select.value = previous;
  select.onchange = () => renderHistory(topics.find((t) => t.topicId === select.value));
  if (topics.length > 0) renderHistory(topics.find((t) => t.topicId === select.value) ?? topics[0]);
  document.getElementById("no-topics").hidden = topics.length > 0;
  for (const id of ["topics-section", "heatmap-section", "history-section"])
    document.getElementById(id).hidden = topics.length === 0;
  const overrideTopic = document.getElementById("override-topic");
  const keep = overrideTopic.value;
  overrideTopic.replaceChildren(...options());
  if (keep) overrideTopic.value = keep;
  document.getElementById("content").hidden = false;
  document.body.dataset.loaded = "true";
}

/** ?as_of=YYYY-MM-DD, or null (anchor at the last activity). */
function chosenAsOf() {
  const v = document.getElementById("as-of").value || query("as_of") || "";
  return /^\d{4}-\d{2}-\d{2}$/.test(v) ? v : null;
}

if (c) {
  // A class view link names the student by pseudonym (key:...): show it shortened.
  document.getElementById("student-id").textContent = id.startsWith("key:") ? `${id.slice(4, 14)}…` : id;
  document.getElementById("as-of").value = query("as_of") ?? "";
  document.getElementById("as-of-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const url = new URL(location.href);
    const v = document.getElementById("as-of").value;
    if (v) url.searchParams.set("as_of", v);
    else url.searchParams.delete("as_of");
    history.replaceState(null, "", url);
    renderHeatmap(topicsShown, chosenAsOf());
  });
  document.getElementById("override").hidden = !(c.role === "teacher" || c.role === "admin");
  document.getElementById("override-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = document.getElementById("override-status");
    status.textContent = "saving…";
    try {
      const out = await api("/feedback", {
        method: "POST",
        body: {
          studentId: id,
          topicId: document.getElementById("override-topic").value,
          mastery: Number(document.getElementById("override-mastery").value),
          reason: document.getElementById("override-reason").value,
        },
      });
      await load();
      status.textContent = `saved (was ${fmt(out.previousScore, 3)} from ${out.previousSource ?? "none"})`;
      status.className = "ok";
    } catch (err) {
      status.textContent = "";
      showError(err);
    }
  });
  load().catch((err) => {
    showError(err);
    document.body.dataset.loaded = "error";
  });
}

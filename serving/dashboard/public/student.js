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

/** The model source behind a topic: the served one, or under an override the first stored in order. */
function modelSource(topic) {
  if (topic.scoreSource !== OVERRIDE) return topic.scoreSource;
  const stored = Object.keys(topic.scores ?? {}).filter((s) => s !== OVERRIDE);
  return SOURCE_ORDER.find((s) => stored.includes(s)) ?? stored[0] ?? OVERRIDE;
}

/** The entries of the series the student is served: the topic's model source plus overrides. */
function servedSeries(topic, history) {
  const source = modelSource(topic);
  const own = history.filter((e) => e.scoreSource === source || e.scoreSource === OVERRIDE);
  const list = own.length > 0 ? own : history;
  return [...list].sort((a, b) => a.asOf.localeCompare(b.asOf) || a.recordedAt.localeCompare(b.recordedAt));
}

function factorsText(explanation) {
  const f = explanation?.factors ?? [];
  return f.map((x) => `${x.name} ${signed(x.contribution)} (value ${fmt(x.value, 2)})`).join("; ");
}

function renderTopics(topics) {
  const rows = topics.map((t) =>
    h(
      "tr",
      { dataset: { topic: t.topicId } },
      h("td", {}, t.topicId),
      h("td", {}, t.name ?? ""),
      h("td", { class: "num score", dataset: { score: String(t.score) } }, fmt(t.score, 3)),
      h("td", { class: t.scoreSource === OVERRIDE ? "source override" : "source" }, t.scoreSource),
      h("td", {}, t.modelVersion),
      h("td", { class: "why" }, factorsText(t.explanation)),
    ),
  );
  document.querySelector("#topics tbody").replaceChildren(...rows);
}

function renderHeatmap(topics) {
  const series = topics.map((t) => [t, servedSeries(t, histories.get(t.topicId) ?? [])]);
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const [, s] of series) {
    for (const e of s) {
      lo = Math.min(lo, weekOf(e.asOf));
      hi = Math.max(hi, weekOf(e.asOf));
    }
  }
  const weeks = [];
  if (Number.isFinite(lo))
    for (let w = Math.max(lo, hi - (MAX_WEEKS - 1) * 7 * DAY); w <= hi; w += 7 * DAY) weeks.push(w);
  document
    .querySelector("#heatmap thead")
    .replaceChildren(h("tr", {}, h("th", {}, "Topic"), ...weeks.map((w) => h("th", {}, isoDay(w)))));
  const rows = series.map(([t, s]) => {
    const cells = weeks.map((w) => {
      let last = null;
      for (const e of s) if (weekOf(e.asOf) <= w) last = e;
      if (last === null) return h("td", {}, "");
      const carried = weekOf(last.asOf) < w;
      return h(
        "td",
        {
          class: carried ? "carried" : "",
          style: `background:${heatColor(last.score)}`,
          title: `${last.scoreSource} ${last.modelVersion} as of ${last.asOf}`,
          dataset: { score: String(last.score), week: isoDay(w) },
        },
        fmt(last.score),
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

async function load() {
  const [mastery, recs] = await Promise.all([api(base), api(`/recommendations/${encodeURIComponent(id)}`)]);
  const topics = mastery.topics;
  const hist = await Promise.all(
    topics.map((t) =>
      api(`${base}/${encodeURIComponent(t.topicId)}/history`).then((r) => [t.topicId, r.history]),
    ),
  );
  histories = new Map(hist);
  renderTopics(topics);
  renderHeatmap(topics);
  renderRecommendations(recs);
  const select = document.getElementById("topic-select");
  const previous = select.value;
  const options = () => topics.map((t) => h("option", { value: t.topicId }, `${t.topicId} ${t.name ?? ""}`));
  select.replaceChildren(...options());
  if (previous && topics.some((t) => t.topicId === previous)) select.value = previous;
  select.onchange = () => renderHistory(topics.find((t) => t.topicId === select.value));
  if (topics.length > 0) renderHistory(topics.find((t) => t.topicId === select.value) ?? topics[0]);
  const overrideTopic = document.getElementById("override-topic");
  const keep = overrideTopic.value;
  overrideTopic.replaceChildren(...options());
  if (keep) overrideTopic.value = keep;
  document.getElementById("content").hidden = false;
  document.body.dataset.loaded = "true";
}

if (c) {
  document.getElementById("student-id").textContent = id;
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

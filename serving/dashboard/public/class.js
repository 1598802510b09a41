import { api, fmt, h, heatColor, page, query, showError } from "./common.js";

const c = page();
const id = query("id") ?? "";
const short = (key) => `${key.slice(0, 10)}…`;

async function load(threshold) {
  const qs = threshold === null || threshold === "" ? "" : `?threshold=${encodeURIComponent(threshold)}`;
  const data = await api(`/classes/${encodeURIComponent(id)}/mastery${qs}`);
  document.getElementById("threshold").value = String(data.threshold);
  document
    .querySelector("#class-heatmap thead")
    .replaceChildren(h("tr", {}, h("th", {}, "Student"), ...data.topics.map((t) => h("th", {}, t))));
  const rows = data.students.map((s) =>
    h(
      "tr",
      { dataset: { student: s.studentKey } },
      h("th", { title: s.studentKey }, short(s.studentKey)),
      ...data.topics.map((t) => {
        const v = s.scores[t];
        if (!v) return h("td", {}, "");
        return h(
          "td",
          {
            class: v.score < data.threshold ? "below" : "",
            style: `background:${heatColor(v.score)}`,
            title: `${t}: ${v.scoreSource}`,
            dataset: { topic: t, score: String(v.score) },
          },
          fmt(v.score),
        );
      }),
    ),
  );
  document.querySelector("#class-heatmap tbody").replaceChildren(...rows);
  const below = data.students.filter((s) => s.below.length > 0);
  document.getElementById("below-summary").textContent =
    `${below.length} of ${data.students.length} students have at least one topic below ${fmt(data.threshold)}.`;
  document
    .getElementById("below-list")
    .replaceChildren(
      ...below
        .sort((a, b) => b.below.length - a.below.length)
        .map((s) =>
          h(
            "li",
            { dataset: { student: s.studentKey, count: String(s.below.length) } },
            `${short(s.studentKey)}: ${s.below.length} topic(s) — ${s.below.join(", ")}`,
          ),
        ),
    );
  document.getElementById("content").hidden = false;
  document.body.dataset.loaded = "true";
}

if (c) {
  document.getElementById("class-id").textContent = id;
  document.getElementById("threshold-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    load(document.getElementById("threshold").value).catch(showError);
  });
  load(query("threshold")).catch((err) => {
    showError(err);
    document.body.dataset.loaded = "error";
  });
}

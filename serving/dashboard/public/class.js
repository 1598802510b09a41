import { api, fmt, h, heatColor, page, query, showError } from "./common.js";

const c = page();
const id = query("id") ?? "";
const short = (key) => `${key.slice(0, 10)}…`;

/**
 * A student's page, named by pseudonym (the API accepts key:<student_key>). Whoever may see a class
 * view may open its students: admins and services pass any student check, and a teacher sees the
 * class only when the roster names them, which is the same roster that lets them see its students.
 */
const studentLink = (key, text) =>
  h("a", { href: `student.html?id=${encodeURIComponent(`key:${key}`)}`, class: "student-link" }, text);

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
      h("th", { title: s.studentKey }, studentLink(s.studentKey, short(s.studentKey))),
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
  document.getElementById("no-students").hidden = data.students.length > 0;
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
            studentLink(s.studentKey, short(s.studentKey)),
            `: ${s.below.length} topic(s) — ${s.below.join(", ")}`,
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

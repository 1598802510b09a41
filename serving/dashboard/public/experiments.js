import { api, fmt, h, page, showError } from "./common.js";

const c = page();
const pct = (x) => (typeof x === "number" && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "–");
const ci = (iv, scale = 100, unit = " pts") =>
  iv ? `${fmt(scale * iv.diff, 1)}${unit} [${fmt(scale * iv.lo, 1)}, ${fmt(scale * iv.hi, 1)}]` : "–";

function reportTable(report) {
  const head = [
    "Arm",
    "Exposed",
    "Accuracy (n)",
    "vs control, 95% CI",
    "Mastered / n",
    "Median days",
    "Days vs control, 95% CI",
    "Planned n",
  ];
  return h(
    "table",
    { class: "report" },
    h("thead", {}, h("tr", {}, ...head.map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      ...report.arms.map((a) =>
        h(
          "tr",
          { dataset: { arm: a.arm } },
          h("td", {}, a.arm, a.isControl ? " (control)" : ""),
          h("td", { class: "num" }, String(a.exposed)),
          h("td", { class: "num" }, `${pct(a.accuracy.mean)} (${a.accuracy.students})`),
          h("td", { class: "num" }, ci(a.accuracyVsControl)),
          h("td", { class: "num" }, `${a.mastery.mastered} / ${a.mastery.students}`),
          h("td", { class: "num" }, fmt(a.mastery.medianDays, 1)),
          h("td", { class: "num" }, ci(a.masteryVsControl, 1, " d")),
          h("td", { class: "num" }, String(a.plannedStudents)),
        ),
      ),
    ),
  );
}

async function load() {
  const { experiments } = await api("/experiments");
  const content = document.getElementById("content");
  if (experiments.length === 0) {
    content.replaceChildren(
      h(
        "p",
        { id: "no-experiments" },
        "No experiment yet. Create one with npx mastery experiments create (see its --help) or POST /experiments.",
      ),
    );
    document.body.dataset.loaded = "true";
    return;
  }
  const sections = await Promise.all(
    experiments.map(async (e) => {
      const arms = e.arms.map((a) => `${a.name} ${pct(a.share)}`).join(", ");
      const section = h(
        "section",
        { dataset: { experiment: e.id } },
        h("h2", {}, `${e.name} (${e.id})`),
        h(
          "p",
          {},
          `Status ${e.status}, from ${e.startAt} to ${e.endAt ?? "open"}; arms: ${arms}; control arm: ${e.control}`,
        ),
      );
      try {
        const r = await api(`/experiments/${encodeURIComponent(e.id)}/report`);
        const exposed = r.arms.reduce((n, a) => n + a.exposed, 0);
        // Nobody exposed yet: say so instead of a table of dashes and a chi-square of zero counts.
        if (exposed === 0) {
          section.append(
            h(
              "p",
              { class: "empty-state no-exposures" },
              `No student has been exposed to this experiment yet (as of ${r.asOf}): per-arm results and the ` +
                "sample-ratio check appear once students are served a score from an arm.",
            ),
          );
          return section;
        }
        section.append(
          reportTable(r),
          h(
            "p",
            { class: "srm" },
            `Sample-ratio check: χ² ${fmt(r.srm.chi2)}, df ${r.srm.df}, p ${fmt(r.srm.p, 3)}${r.srm.flagged ? " — FLAGGED" : ""}; ` +
              `${r.conclusive ? "conclusive" : "not conclusive"} as of ${r.asOf}`,
          ),
          h("p", { class: "summary" }, r.summary),
        );
      } catch (err) {
        section.append(h("p", { class: "report-error" }, `report unavailable: ${err.message}`));
      }
      return section;
    }),
  );
  content.replaceChildren(...sections);
  document.body.dataset.loaded = "true";
}

if (c) {
  load().catch((err) => {
    showError(err);
    document.body.dataset.loaded = "error";
  });
}

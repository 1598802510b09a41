import { api, fmt, h, page, showError } from "./common.js";

const c = page();

/** Metrics as one line each ("auc 0.7812"), so a long list stays readable. */
const metricsList = (m) => {
  const entries = Object.entries(m ?? {});
  if (entries.length === 0) return h("span", { class: "empty-state" }, "none recorded");
  return h(
    "ul",
    { class: "metrics" },
    ...entries.map(([k, v]) => h("li", { dataset: { metric: k } }, `${k} ${fmt(v, 4)}`)),
  );
};

/** A hash or commit, shortened, with the full value on hover. */
const short = (x, n) => h("code", { title: x }, x.length > n ? `${x.slice(0, n)}…` : x);

/**
 * Where a version came from, as a small two-column table: the data window (from, to), the training
 * file (name, rows, sha256), the feature-schema hash, the code commit and the parent version. Rows
 * the registry has no value for are left out; a version with none says so.
 */
function lineageTable(v) {
  const rows = [];
  const d = v.data ?? {};
  if (d.from || d.to) rows.push(["Data window", `${d.from ?? "…"} → ${d.to ?? "…"}`]);
  if (d.file) rows.push(["Data file", d.rows !== undefined ? `${d.file} (${d.rows} rows)` : d.file]);
  else if (d.rows !== undefined) rows.push(["Data rows", String(d.rows)]);
  if (d.sha256) rows.push(["Data sha256", short(d.sha256, 12)]);
  if (v.featureSchemaHash && v.featureSchemaHash !== "none")
    rows.push(["Feature schema", short(v.featureSchemaHash, 12)]);
  if (v.codeCommit && v.codeCommit !== "unknown") rows.push(["Code commit", short(v.codeCommit, 10)]);
  if (v.parent) rows.push(["Parent", `${v.parent.name} v${v.parent.version}`]);
  if (rows.length === 0) return h("span", { class: "empty-state" }, "no lineage recorded");
  return h(
    "table",
    { class: "lineage" },
    h(
      "tbody",
      {},
      ...rows.map(([k, val]) => h("tr", { dataset: { field: k } }, h("th", {}, k), h("td", {}, val))),
    ),
  );
}

async function load() {
  const list = await api("/models");
  const content = document.getElementById("content");
  if (list.models.length === 0) {
    content.replaceChildren(
      h(
        "p",
        { id: "no-models" },
        "No model is registered yet. Train one (npx mastery train elo …) and register it: npx mastery models register NAME --dir DIR (see npx mastery models register --help).",
      ),
    );
    document.body.dataset.loaded = "true";
    return;
  }
  const sections = list.models.map((m) => {
    const versions = list.versions.filter((v) => v.name === m.name).sort((a, b) => b.version - a.version);
    return h(
      "section",
      { dataset: { model: m.name } },
      h("h2", {}, m.name, m.name === list.servedModelName ? " (served)" : ""),
      h(
        "p",
        { class: "aliases" },
        "Aliases: ",
        Object.entries(m.aliases ?? {})
          .map(([a, v]) => `${a} → v${v}`)
          .join(", ") || "none",
      ),
      h(
        "table",
        { class: "versions" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ...["Version", "Kind", "Aliases", "Metrics", "Lineage", "Created"].map((t) => h("th", {}, t)),
          ),
        ),
        h(
          "tbody",
          {},
          ...versions.map((v) =>
            h(
              "tr",
              { dataset: { version: String(v.version) } },
              h("td", {}, `v${v.version}`),
              h("td", {}, v.kind),
              h("td", {}, v.aliases.join(", ")),
              h("td", {}, metricsList(v.metrics)),
              h("td", { class: "lineage-cell" }, lineageTable(v)),
              h("td", {}, v.createdAt.replace("T", " ").slice(0, 16), h("br"), `by ${v.createdBy ?? "?"}`),
            ),
          ),
        ),
      ),
    );
  });
  content.replaceChildren(...sections);
  document.body.dataset.loaded = "true";
}

if (c) {
  load().catch((err) => {
    showError(err);
    document.body.dataset.loaded = "error";
  });
}

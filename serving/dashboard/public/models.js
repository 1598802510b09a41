import { api, fmt, h, page, showError } from "./common.js";

const c = page();

const metricsText = (m) =>
  Object.entries(m ?? {})
    .map(([k, v]) => `${k} ${fmt(v, 4)}`)
    .join(", ");

/** Where a version came from: data window, feature-schema hash, code commit and parent version. */
function lineageText(v) {
  const parts = [];
  if (v.data && Object.keys(v.data).length > 0) parts.push(`data ${JSON.stringify(v.data)}`);
  if (v.featureSchemaHash) parts.push(`features ${v.featureSchemaHash.slice(0, 12)}`);
  if (v.codeCommit) parts.push(`commit ${v.codeCommit.slice(0, 10)}`);
  if (v.parent) parts.push(`parent ${v.parent.name}@${v.parent.version}`);
  return parts.join(" · ");
}

async function load() {
  const list = await api("/models");
  const content = document.getElementById("content");
  if (list.models.length === 0) {
    content.replaceChildren(
      h("p", { id: "no-models" }, "No model is registered yet (mastery models register …)."),
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
              h("td", {}, metricsText(v.metrics)),
              h("td", {}, lineageText(v)),
              h("td", {}, `${v.createdAt} ${v.createdBy ?? ""}`),
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

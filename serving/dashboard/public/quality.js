import { api, fmt, h, page, showError } from "./common.js";

const c = page();

/** A table of `rows` with [header, row => cell text] columns; `id` for tests. */
function table(id, columns, rows, empty = "none") {
  if (rows.length === 0) return h("p", { id, class: "empty empty-state" }, empty);
  return h(
    "table",
    { id },
    h("thead", {}, h("tr", {}, ...columns.map(([name]) => h("th", {}, name)))),
    h(
      "tbody",
      {},
      ...rows.map((r) => h("tr", {}, ...columns.map(([, cell]) => h("td", {}, String(cell(r)))))),
    ),
  );
}

async function load() {
  const [q, drift] = await Promise.all([api("/quality"), api("/drift/checks?limit=20")]);
  const t = q.totals;
  const content = document.getElementById("content");
  content.replaceChildren(
    h(
      "section",
      {},
      h("h2", {}, "Totals"),
      h(
        "p",
        { id: "totals", dataset: { events: String(t.events) } },
        `${t.events} events (${t.rawRows} rows), ${t.rejectedRows} rejected rows (${t.deadLetterRows} dead letters) as of ${q.asOf}`,
      ),
    ),
    h(
      "section",
      {},
      h("h2", {}, "Freshness"),
      table(
        "freshness",
        [
          ["Source", (r) => r.source],
          ["Type", (r) => r.type],
          ["Events", (r) => r.events],
          ["Last event", (r) => r.lastEventAt],
          ["Hours since", (r) => fmt(r.secondsSinceLastEvent / 3600, 1)],
        ],
        q.freshness,
      ),
    ),
    h(
      "section",
      {},
      h("h2", {}, "Completeness below 100%"),
      table(
        "completeness",
        [
          ["Type", (r) => r.type],
          ["Field", (r) => r.field],
          ["Seen", (r) => r.seen],
          ["Missing", (r) => r.missing],
          ["Completeness", (r) => fmt(r.completeness, 4)],
        ],
        q.completeness.filter((r) => r.completeness < 1),
      ),
    ),
    h(
      "section",
      {},
      h("h2", {}, "Dead letters by reason"),
      table(
        "dead-letters",
        [
          ["Field", (r) => r.field],
          ["Reason", (r) => r.reason],
          ["Rows", (r) => r.count],
        ],
        q.deadLetters,
      ),
    ),
    h(
      "section",
      {},
      h("h2", {}, "Schema drift"),
      h(
        "p",
        {},
        `${q.schemaDrift.groups} groups compared (${q.schemaDrift.storedGroups} against the stored reference)`,
      ),
      table(
        "schema-drift",
        [
          ["Source", (r) => r.source],
          ["Type", (r) => r.type],
          ["Change", (r) => r.change],
          ["Field", (r) => r.field],
          ["Detail", (r) => r.detail],
        ],
        q.schemaDrift.changes,
      ),
    ),
    h(
      "section",
      {},
      h("h2", {}, "Volume anomalies"),
      table(
        "volume",
        [
          ["Day", (r) => r.day],
          ["Source", (r) => r.source],
          ["Type", (r) => r.type],
          ["Count", (r) => r.count],
          ["Median", (r) => fmt(r.median, 0)],
          ["z", (r) => fmt(r.z, 1)],
          ["Anomaly", (r) => r.anomaly],
        ],
        q.volume.anomalies,
      ),
    ),
    h(
      "section",
      {},
      h("h2", {}, "Drift checks (feature and score distributions)"),
      table(
        "drift-checks",
        [
          ["Checked", (r) => r.checkedAt],
          ["Drift", (r) => (r.drift ? "DRIFT" : "ok")],
          ["Reference", (r) => r.reference],
          ["Window", (r) => `${r.currentFrom.slice(0, 10)} – ${r.currentTo.slice(0, 10)}`],
          ["Tests", (r) => r.tests],
          ["Alerts", (r) => r.alerts],
        ],
        drift.checks,
        "No drift check logged yet: the server's monitor runs one every monitor_interval_s (config/serving.yaml) " +
          "unless started with --no-monitor; or run npx mastery drift check.",
      ),
    ),
  );
  document.body.dataset.loaded = "true";
}

if (c) {
  load().catch((err) => {
    showError(err);
    document.body.dataset.loaded = "error";
  });
}

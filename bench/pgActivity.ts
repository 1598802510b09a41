/**
 * What a process's PostgreSQL backends are doing, sampled from pg_stat_activity (its connections tagged with
 * application_name through PGAPPNAME): each sample counts the backends by state and statement, and the summary
 * gives the mean backends per line over the samples. By Little's law a line's mean divided by its statement's
 * rate is the time one such statement spends there; "idle in transaction" lines are connections a transaction
 * holds while the client has not sent its next statement yet (bench/load.bench.ts LOAD_PG_ACTIVITY=1).
 */
import type { PgStore } from "../storage/postgres.ts";

export interface ActivityRow {
  state: string | null;
  wait_event: string | null;
  query: string | null;
}

/**
 * A statement's short name: its first word, and the table it writes (INSERT INTO / UPDATE) or else the first one
 * it reads (FROM); a WITH statement is named after its first write ("WITH..INSERT alert_state").
 */
export function statementName(sql: string): string {
  const text = sql.trim();
  const verb = (/^[A-Za-z]+/.exec(text)?.[0] ?? "").toUpperCase();
  if (verb === "") return "(none)";
  // (Not the lock clause FOR UPDATE [OF t].)
  const write = /\b(INSERT\s+INTO|(?<!\bFOR\s+)UPDATE)\s+(?!OF\b)([A-Za-z_][A-Za-z0-9_.]*)/i.exec(text);
  if (verb === "WITH" && write !== null)
    return `WITH..${(write[1] ?? "").split(/\s+/)[0]?.toUpperCase()} ${write[2]}`;
  if (write !== null && (verb === "INSERT" || verb === "UPDATE")) return `${verb} ${write[2]}`;
  const read = /\bFROM\s+([A-Za-z_][A-Za-z0-9_.]*)/i.exec(text);
  return read === null ? verb : `${verb} ${read[1]}`;
}

/** The line a backend counts on: its state, its wait event when active (CPU when none), its statement. */
export function activityLine(r: ActivityRow): string {
  const state = r.state ?? "(none)";
  if (state === "idle") return "idle";
  const wait = state === "active" ? ` ${r.wait_event ?? "CPU"}` : "";
  return `${state}${wait}: ${statementName(r.query ?? "")}`;
}

/** Mean backends per line over `samples` samples, largest first. */
export function meanBackends(counts: ReadonlyMap<string, number>, samples: number): [string, number][] {
  return [...counts.entries()]
    .map(([line, n]): [string, number] => [line, n / Math.max(1, samples)])
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

/** Samples taken and the mean backends per line over them (activityLine), largest first. */
export interface ActivitySummary {
  samples: number;
  lines: [string, number][];
}

/** Samples the backends of `appName` every `everyMs` until stop(); stop() returns the mean backends per line. */
export function sampleActivity(
  pg: PgStore,
  appName: string,
  everyMs: number,
): { stop: () => Promise<ActivitySummary> } {
  const counts = new Map<string, number>();
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const rows = await pg.all<ActivityRow & Record<string, unknown>>(
        "SELECT state, wait_event, query FROM pg_stat_activity WHERE application_name = $1",
        [appName],
      );
      samples++;
      for (const r of rows) {
        const line = activityLine(r);
        counts.set(line, (counts.get(line) ?? 0) + 1);
      }
      await new Promise((ok) => setTimeout(ok, everyMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { samples, lines: meanBackends(counts, samples) };
    },
  };
}

/**
 * Opens what the drift/retrain commands need: the DuckDB store (features, raw events, scores) and
 * the model registry. With MASTERY_PG_URL the registry lives in PostgreSQL; otherwise it shares the
 * one DuckDB connection (a DuckDB file cannot be opened twice in one process).
 */
import { artifactStoreFor } from "../registry/artifacts.ts";
import { openRegistry, Registry } from "../registry/registry.ts";
import { SqlRegistryStore } from "../registry/store.ts";
import { DuckStore } from "../storage/duckdb.ts";
import { REGISTRY_DDL } from "../storage/schema.ts";

export interface MonitoringHandles {
  store: DuckStore;
  registry: Registry;
  close(): Promise<void>;
}

export async function openMonitoring(opts: {
  dbPath: string;
  artifacts: string;
}): Promise<MonitoringHandles> {
  const store = await DuckStore.open(opts.dbPath);
  const pgUrl = process.env.MASTERY_PG_URL;
  if (pgUrl) {
    try {
      const { registry, opened } = await openRegistry({
        pgUrl,
        pgSchema: process.env.MASTERY_PG_SCHEMA,
        dbPath: opts.dbPath,
        artifactBase: opts.artifacts,
      });
      return {
        store,
        registry,
        close: async () => {
          await opened.close();
          store.close();
        },
      };
    } catch (err) {
      store.close();
      throw err;
    }
  }
  for (const ddl of REGISTRY_DDL) await store.run(ddl);
  const registry = new Registry(
    new SqlRegistryStore(store, "duckdb"),
    artifactStoreFor(opts.artifacts),
    store,
  );
  return { store, registry, close: async () => store.close() };
}

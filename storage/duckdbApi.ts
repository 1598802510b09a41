import { createRequire } from "node:module";
import type * as Duck from "@duckdb/node-api";

/*
 * @duckdb/node-api, loaded with require(). It is a CommonJS package of ~120 files re-exported from one
 * index; an ESM `import { ... } from "@duckdb/node-api"` makes Node lex every file for its named exports,
 * about 0.35 s of CPU on each CLI start. require() skips that. Import DuckDB values from here, types from
 * "@duckdb/node-api" (`import type`).
 */
const duck = createRequire(import.meta.url)("@duckdb/node-api") as typeof Duck;

export const { BIGINT, BOOLEAN, DOUBLE, LIST, TIMESTAMP, VARCHAR, listValue } = duck;
export const DuckDBInstance = duck.DuckDBInstance;
export type DuckDBInstance = Duck.DuckDBInstance;
export const DuckDBTimestampValue = duck.DuckDBTimestampValue;
export type DuckDBTimestampValue = Duck.DuckDBTimestampValue;
export const DuckDBDataChunk = duck.DuckDBDataChunk;
export type DuckDBDataChunk = Duck.DuckDBDataChunk;
/** The conversion of a DuckDB value to a plain JS value that getRowObjectsJS applies to every cell. */
export const JSDuckDBValueConverter = duck.JSDuckDBValueConverter;

/**
 * docs/api.md, generated from the OpenAPI document the server serves (serving/openapi.ts over the route
 * table serving/routes/index.ts), so the reference cannot drift from the code.
 *
 *   npx tsx scripts/gen-api-docs.ts            # (re)write docs/api.md
 *   npx tsx scripts/gen-api-docs.ts --check    # exit 1 when docs/api.md is out of date
 *   npm run docs:api
 *
 * test/scripts/genApiDocs.test.ts fails when the committed docs/api.md differs from the rendering.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AccessError, type Principal, ROLES, type Role, requireAction, type Scope } from "../serving/auth.ts";
import { buildOpenApi } from "../serving/openapi.ts";

type Json = Record<string, unknown>;

export const API_DOC_PATH = join(dirname(fileURLToPath(import.meta.url)), "..", "docs", "api.md");

/**
 * Roles allowed an action, asked of serving/auth.ts `requireAction` itself (not a copy of its table).
 * Services are listed as "service (scope X)"; ownership rules (own student, children, classes) come on top.
 */
export function rolesFor(scope: Scope): string[] {
  const out: string[] = [];
  for (const role of ROLES) {
    const p: Principal = {
      role: role as Role,
      actor: "doc",
      studentKeys: new Set(),
      classes: new Set(),
      scopes: role === "service" ? new Set([scope]) : new Set(),
      exp: Number.POSITIVE_INFINITY,
    };
    try {
      requireAction(p, scope);
      out.push(role === "service" ? `service (scope \`${scope}\`)` : role);
    } catch (e) {
      if (!(e instanceof AccessError)) throw e;
    }
  }
  return out;
}

const refName = (ref: string): string => ref.replace("#/components/schemas/", "");

/** A one-line type for a schema: `string`, `Event[]`, `integer (0..100)`, `A | B`. */
export function typeOf(s: unknown): string {
  if (s === null || typeof s !== "object") return "any";
  const o = s as Json;
  if (typeof o.$ref === "string") return `[${refName(o.$ref)}](#${refName(o.$ref).toLowerCase()})`;
  for (const k of ["oneOf", "anyOf"] as const) {
    const list = o[k];
    if (Array.isArray(list)) return list.map(typeOf).join(" \\| ");
  }
  if (Array.isArray(o.enum)) return o.enum.map((v) => `\`${JSON.stringify(v)}\``).join(" \\| ");
  if (o.const !== undefined) return `\`${JSON.stringify(o.const)}\``;
  let t = Array.isArray(o.type) ? o.type.join(" \\| ") : typeof o.type === "string" ? o.type : "any";
  if (t === "array") t = `${typeOf(o.items)}[]`;
  const bounds: string[] = [];
  if (typeof o.minimum === "number" || typeof o.maximum === "number") {
    bounds.push(`${o.minimum ?? ""}..${o.maximum ?? ""}`);
  }
  if (typeof o.format === "string") bounds.push(o.format);
  if (typeof o.minLength === "number" && o.minLength > 0) bounds.push(`len >= ${o.minLength}`);
  return bounds.length > 0 ? `${t} (${bounds.join(", ")})` : t;
}

const cell = (s: string): string => s.replaceAll("|", "\\|").replaceAll("\n", " ");

/** Table rows for an object's fields; inline nested objects (and arrays of them) become `a.b` / `a[].b` rows. */
function fieldRows(
  prefix: string,
  props: Record<string, Json>,
  required: ReadonlySet<string>,
  depth: number,
): string[] {
  const rows: string[] = [];
  for (const [field, p] of Object.entries(props)) {
    const desc = typeof p.description === "string" ? cell(p.description) : "";
    const name = `${prefix}${field}`;
    rows.push(`| \`${name}\` | ${typeOf(p)} | ${required.has(field) ? "yes" : ""} | ${desc} |`);
    const inner = p.type === "array" ? (p.items as Json | undefined) : p;
    const innerProps = inner?.properties as Record<string, Json> | undefined;
    if (depth < 2 && inner !== undefined && innerProps !== undefined) {
      const req = new Set(Array.isArray(inner.required) ? (inner.required as string[]) : []);
      rows.push(...fieldRows(`${name}${p.type === "array" ? "[]" : ""}.`, innerProps, req, depth + 1));
    }
  }
  return rows;
}

/** A component schema as a field table (objects), or its one-line type (unions, arrays). */
export function renderSchema(name: string, s: Json): string[] {
  const out = [`### ${name}`, ""];
  if (typeof s.description === "string") out.push(s.description, "");
  const props = s.properties as Record<string, Json> | undefined;
  if (props !== undefined && Object.keys(props).length > 0) {
    const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
    out.push("| field | type | required | description |", "| --- | --- | --- | --- |");
    out.push(...fieldRows("", props, required, 0));
    if (s.additionalProperties === false) out.push("", "No other fields are accepted.");
  } else {
    out.push(`Type: ${typeOf(s)}`);
  }
  out.push("");
  return out;
}

/** docs/api.md from an OpenAPI 3.1 document. Deterministic: same document, same bytes. */
export function renderApiMarkdown(doc: Json): string {
  const info = doc.info as Json;
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const schemas = ((doc.components as Json).schemas ?? {}) as Record<string, Json>;
  const out: string[] = [
    `# ${String(info.title)} — HTTP reference`,
    "",
    "<!-- GENERATED by scripts/gen-api-docs.ts from serving/openapi.ts; do not edit. `npm run docs:api` -->",
    "",
    `OpenAPI ${String(doc.openapi)}, API version ${String(info.version)}. The live document is served at`,
    "`GET /openapi.json` and an HTML list at `GET /docs`.",
    "",
    String(info.description),
    "",
    "Roles: admin may do everything; a service token needs the route's scope in its `scopes[]` claim;",
    "student and parent reads are limited to their own (children's) student ids, teacher reads to students on",
    "the roster of a class they may use (checked per request, not shown in the table; docs/runbook.md).",
    "",
    "## Operations",
    "",
    "| method | path | summary | scope | roles |",
    "| --- | --- | --- | --- | --- |",
  ];
  const ops: [string, string, Json][] = [];
  for (const [path, byMethod] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(byMethod)) ops.push([method, path, op]);
  }
  for (const [method, path, op] of ops) {
    const scope = op["x-required-scope"] as Scope | undefined;
    const roles = scope === undefined ? "public" : rolesFor(scope).join(", ");
    out.push(
      `| ${method.toUpperCase()} | [\`${path}\`](#${anchor(method, path)}) | ${cell(String(op.summary))} | ${scope === undefined ? "none" : `\`${scope}\``} | ${roles} |`,
    );
  }
  out.push("");
  for (const [method, path, op] of ops) {
    out.push(`### ${method.toUpperCase()} ${path}`, "", `<a id="${anchor(method, path)}"></a>`, "");
    out.push(
      `${String(op.summary)}.`,
      "",
      `operationId \`${String(op.operationId)}\`, tag \`${(op.tags as string[])[0]}\`.`,
    );
    const scope = op["x-required-scope"] as Scope | undefined;
    out.push(
      scope === undefined
        ? "Auth: none (public)."
        : `Auth: Bearer JWT; scope \`${scope}\` (roles: ${rolesFor(scope).join(", ")}).`,
    );
    const params = (op.parameters ?? []) as Json[];
    if (params.length > 0) {
      out.push("", "Path parameters:");
      for (const p of params) {
        const d = typeof p.description === "string" ? ` — ${p.description}` : "";
        out.push(`- \`${String(p.name)}\` (${typeOf(p.schema)})${d}`);
      }
    }
    const body = op.requestBody as Json | undefined;
    if (body !== undefined) out.push("", `Request body (application/json): ${typeOf(bodySchema(body))}`);
    out.push("", "| status | meaning | body |", "| --- | --- | --- |");
    for (const [status, r] of Object.entries(op.responses as Record<string, Json>)) {
      const schema = bodySchema(r);
      out.push(
        `| ${status} | ${cell(String(r.description))} | ${schema === undefined ? "" : typeOf(schema)} |`,
      );
    }
    out.push("");
  }
  out.push("## Schemas", "");
  for (const name of Object.keys(schemas).sort()) out.push(...renderSchema(name, schemas[name]!));
  return `${out
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}

function bodySchema(r: Json): unknown {
  const content = r.content as Record<string, Json> | undefined;
  return content?.["application/json"]?.schema;
}

function anchor(method: string, path: string): string {
  return `${method}-${path}`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/-+$/, "");
}

/** The markdown of the current code's OpenAPI document. */
export function currentApiMarkdown(): string {
  return renderApiMarkdown(buildOpenApi() as Json);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const md = currentApiMarkdown();
  if (process.argv.includes("--check")) {
    let old = "";
    try {
      old = readFileSync(API_DOC_PATH, "utf8");
    } catch {
      // missing file = out of date
    }
    if (old !== md) {
      process.stderr.write("docs/api.md is out of date: run `npm run docs:api` and commit it\n");
      process.exit(1);
    }
    process.stdout.write("docs/api.md is up to date\n");
  } else {
    writeFileSync(API_DOC_PATH, md);
    process.stdout.write(`wrote ${API_DOC_PATH} (${md.length} bytes)\n`);
  }
}

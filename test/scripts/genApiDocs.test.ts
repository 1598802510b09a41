import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  API_DOC_PATH,
  currentApiMarkdown,
  renderSchema,
  rolesFor,
  typeOf,
} from "../../scripts/gen-api-docs.ts";
import { openApiPath } from "../../serving/openapi.ts";
import { ROUTES } from "../../serving/routes/index.ts";

describe("docs/api.md", () => {
  it("equals the rendering of the current OpenAPI document (run `npm run docs:api` when this fails)", () => {
    expect(readFileSync(API_DOC_PATH, "utf8")).toBe(currentApiMarkdown());
  });

  it("has a section for every route of the route table, with its scope", () => {
    const md = currentApiMarkdown();
    for (const r of ROUTES) {
      const head = `### ${r.method.toUpperCase()} ${openApiPath(r.path)}\n`;
      expect(md, head).toContain(head);
      const section = md.slice(md.indexOf(head), md.indexOf("\n### ", md.indexOf(head) + 1));
      expect(section).toContain(r.scope === null ? "Auth: none (public)." : `scope \`${r.scope}\``);
    }
  });
});

describe("renderer", () => {
  it("asks serving/auth.ts which roles may do an action", () => {
    expect(rolesFor("mastery:read")).toEqual([
      "student",
      "parent",
      "teacher",
      "admin",
      "service (scope `mastery:read`)",
    ]);
    expect(rolesFor("models:write")).toEqual(["admin", "service (scope `models:write`)"]);
  });

  it("summarizes types and flattens nested fields", () => {
    expect(typeOf({ type: "integer", minimum: 0, maximum: 100 })).toBe("integer (0..100)");
    expect(typeOf({ type: "array", items: { $ref: "#/components/schemas/Event" } })).toBe(
      "[Event](#event)[]",
    );
    expect(typeOf({ oneOf: [{ type: "string" }, { type: "null" }] })).toBe("string \\| null");
    const md = renderSchema("X", {
      type: "object",
      required: ["a"],
      properties: {
        a: {
          type: "array",
          items: { type: "object", required: ["b"], properties: { b: { type: "number" } } },
        },
      },
    }).join("\n");
    expect(md).toContain("| `a` | object[] | yes |  |");
    expect(md).toContain("| `a[].b` | number | yes |  |");
  });
});

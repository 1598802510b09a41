import request from "supertest";
import { describe, expect, it } from "vitest";
import { buildOpenApi, openApiPath } from "../../serving/openapi.ts";
import { ROUTES } from "../../serving/routes/index.ts";
import { storeWithTopics, testApp } from "./appFixture.ts";

describe("OpenAPI document", () => {
  it("is served as JSON, is 3.1, and lists every mounted route with its method", async () => {
    const store = await storeWithTopics();
    const h = await testApp(store);
    const res = await request(h.app).get("/openapi.json");
    expect(res.status).toBe(200);
    const doc = JSON.parse(res.text) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe("3.1.0");
    // The routes actually mounted on the Express router.
    const stack = (
      h.app.router as unknown as { stack: { route?: { path: string; methods: Record<string, boolean> } }[] }
    ).stack;
    const mounted = stack
      .filter((l) => l.route)
      .flatMap((l) => Object.keys(l.route!.methods).map((m) => `${m} ${l.route!.path}`));
    expect(mounted.length).toBe(ROUTES.length);
    for (const m of mounted) {
      const [method, path] = m.split(" ") as [string, string];
      expect(doc.paths[openApiPath(path)]?.[method], m).toBeDefined();
    }
    const docs = await request(h.app).get("/docs");
    expect(docs.status).toBe(200);
    for (const r of ROUTES) expect(docs.text).toContain(openApiPath(r.path));
    expect(docs.text).not.toMatch(/<script|https?:\/\/(?!spec)/);
    store.close();
  });

  it("every $ref resolves and event schemas match the contracts", () => {
    const doc = buildOpenApi() as { components: { schemas: Record<string, unknown> } };
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map(
      (m) => m[1]!,
    );
    expect(refs.length).toBeGreaterThan(10);
    for (const r of refs) expect(doc.components.schemas[r], r).toBeDefined();
    const practice = doc.components.schemas.PracticeEvent as {
      properties: Record<string, { maximum?: unknown; description?: string }>;
      required: string[];
    };
    expect(practice.required).toContain("correct_count");
    expect(practice.properties.correct_count!.maximum).toBeUndefined();
    expect(practice.properties.correct_count!.description).toMatch(/<= attempts/);
  });
});

/**
 * The web dashboard, mounted at /app: static pages (plain HTML + one ES module each) that call only
 * the JSON API with the token pasted at login, so every page is bound by the API's access rules.
 * Chart.js is served from node_modules (the machine and many schools have no CDN access), and
 * nothing else under node_modules is exposed.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import express, { type RequestHandler, type Router } from "express";

const PUBLIC_DIR = join(dirname(fileURLToPath(import.meta.url)), "public");

/** dist/ of the installed chart.js (its CommonJS entry lives there). */
const chartDist = (): string => dirname(createRequire(import.meta.url).resolve("chart.js"));

export function dashboardRouter(): Router {
  const router = express.Router();
  const chart = join(chartDist(), "chart.umd.min.js");
  router.get("/vendor/chart.umd.min.js", (_req, res) => {
    res.sendFile(chart, { maxAge: "1d" });
  });
  router.use(express.static(PUBLIC_DIR, { index: "index.html", maxAge: 0 }));
  return router;
}

/**
 * Browsers ask for /favicon.ico on pages that name no icon (/docs, a JSON response); the dashboard's
 * own pages link public/favicon.svg. Redirected rather than a 404 in every server log.
 */
export const faviconRedirect: RequestHandler = (_req, res) => {
  res.redirect(301, "/app/favicon.svg");
};

// Shared by every dashboard page: the token (sessionStorage), API calls with it as Bearer, the nav
// bar, error display and small DOM helpers. Pages only call the JSON API, so its access rules apply.

const TOKEN_KEY = "mastery.token";

export const getToken = () => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (t) => sessionStorage.setItem(TOKEN_KEY, t.trim());
export const clearToken = () => sessionStorage.removeItem(TOKEN_KEY);

/** The token's claims, decoded without verification: only used to pick links; the API decides access. */
export function claims() {
  const t = getToken();
  if (!t) return null;
  try {
    const part = t.split(".")[1] ?? "";
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, body) {
    super(`${status} ${body?.error ?? "error"}: ${body?.reason ?? "request failed"}`);
    this.status = status;
    this.body = body;
  }
}

/** fetch(path) with the Bearer token; JSON in and out; non-2xx throws ApiError with the API's reason. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { authorization: `Bearer ${getToken() ?? ""}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { error: "bad_response", reason: text.slice(0, 200) };
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

/** h("td", {class: "x", dataset: {score: "0.5"}}, "text", childNode) */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "style") e.style.cssText = v;
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export const fmt = (x, digits = 2) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : "–");
export const signed = (x) => `${x >= 0 ? "+" : ""}${fmt(x, 3)}`;

/** Red (0) -> amber (0.5) -> green (1), for heatmap cells. */
export const heatColor = (score) => `hsl(${Math.round(120 * Math.max(0, Math.min(1, score)))}, 70%, 72%)`;

export function showError(err) {
  const box = document.getElementById("error");
  if (!box) return;
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

export function query(name) {
  return new URLSearchParams(location.search).get(name);
}

/** Redirects to the login page when there is no token; renders the nav bar otherwise. */
export function page() {
  if (!getToken()) {
    location.replace(`index.html?next=${encodeURIComponent(location.pathname + location.search)}`);
    return null;
  }
  const c = claims() ?? {};
  const nav = document.getElementById("nav");
  if (nav) {
    const links = [h("a", { href: "index.html" }, "Home")];
    if (c.role === "admin" || c.role === "service") {
      links.push(
        h("a", { href: "models.html" }, "Models"),
        h("a", { href: "experiments.html" }, "Experiments"),
        h("a", { href: "quality.html" }, "Data"),
      );
    } else if (c.role === "teacher") {
      links.push(h("a", { href: "experiments.html" }, "Experiments"));
    }
    const out = h("button", { type: "button", id: "logout" }, "Sign out");
    out.addEventListener("click", () => {
      clearToken();
      location.href = "index.html";
    });
    nav.replaceChildren(
      h("strong", {}, "Mastery"),
      ...links,
      h("span", { class: "who" }, `${c.role ?? "?"} ${c.sub ?? ""}`),
      out,
    );
  }
  return c;
}

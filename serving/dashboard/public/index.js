import { claims, getToken, h, query, setToken, showError } from "./common.js";

function home() {
  const c = claims();
  if (!c) {
    showError("That is not a JWT (three base64url parts separated by dots).");
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("home").hidden = false;
  document.getElementById("whoami").textContent = `Signed in as ${c.role} ${c.sub ?? ""}`;
  const links = [];
  if (c.role === "student") links.push(["My mastery", `student.html?id=${encodeURIComponent(c.sub)}`]);
  for (const child of c.children ?? []) {
    links.push([`Child ${child}`, `student.html?id=${encodeURIComponent(child)}`]);
  }
  for (const cls of c.classes ?? []) links.push([`Class ${cls}`, `class.html?id=${encodeURIComponent(cls)}`]);
  if (c.role === "admin" || c.role === "service") {
    links.push(
      ["Models", "models.html"],
      ["Experiments", "experiments.html"],
      ["Data quality and drift", "quality.html"],
    );
  }
  if (c.role === "teacher") links.push(["Experiments", "experiments.html"]);
  document
    .getElementById("links")
    .replaceChildren(...links.map(([t, href]) => h("li", {}, h("a", { href }, t))));
  const staff = c.role === "teacher" || c.role === "admin" || c.role === "service";
  document.getElementById("open-student").hidden = !staff;
  document.getElementById("open-class").hidden = !staff;
}

document.getElementById("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  setToken(document.getElementById("token").value);
  const next = query("next");
  if (next?.startsWith("/app/")) location.href = next;
  else home();
});
document.getElementById("open-student").addEventListener("submit", (ev) => {
  ev.preventDefault();
  location.href = `student.html?id=${encodeURIComponent(document.getElementById("student-id").value.trim())}`;
});
document.getElementById("open-class").addEventListener("submit", (ev) => {
  ev.preventDefault();
  location.href = `class.html?id=${encodeURIComponent(document.getElementById("class-id").value.trim())}`;
});
if (getToken()) home();

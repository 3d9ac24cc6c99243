// Sign-in: a link from `alkasba dashboard grant` carries the user and key in the fragment (which
// never reaches a server or its logs); the form does the same by hand.
"use strict";
async function signIn(user, key) {
  const r = await fetch("/api/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user, key }) });
  if (r.ok) { location.replace("/"); return; }
  const e = document.getElementById("login-error");
  e.textContent = r.status === 401 ? "Unknown user or wrong key." : `Sign-in failed (${r.status}).`;
  e.hidden = false;
}
const form = document.getElementById("login");
form.addEventListener("submit", (ev) => { ev.preventDefault(); signIn(form.user.value, form.key.value); });
const frag = new URLSearchParams(location.hash.slice(1));
if (frag.get("user") && frag.get("key")) {
  history.replaceState(null, "", "/login");
  signIn(frag.get("user"), frag.get("key"));
}

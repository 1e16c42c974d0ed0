// The gateway console: plain DOM, no framework. The API key (or the access token signin.js got
// from the identity provider) lives in sessionStorage (this tab only) and goes out as
// `Authorization: Bearer …` on each same-origin fetch; no cookie is used.
"use strict";
(() => {
  const $ = (s) => document.querySelector(s);
  const KEY = "azhexgate.apiKey"; // the bearer: an API key, or an access token from signin.js
  const WHO = "azhexgate.who";
  const el = (tag, attrs, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) n.append(k instanceof Node ? k : String(k));
    return n;
  };
  const size = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`);
  const ago = (s) => (s == null ? "—" : s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`);
  let timer = null;

  async function call(method, path, body) {
    const headers = { authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` };
    if (body) headers["content-type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined, credentials: "omit", cache: "no-store" });
    if (res.status === 204) return null;
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error((data.error && data.error.message) || `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function show(signedIn) {
    $("#signin").hidden = signedIn;
    $("#tunnels").hidden = !signedIn;
    $("#signout").hidden = !signedIn;
    clearInterval(timer);
    if (signedIn) timer = setInterval(() => load().catch(() => {}), 3000);
  }
  const say = (text, isError) => {
    $("#message").textContent = text;
    $("#message").className = isError ? "error" : "";
  };

  function row(t) {
    const name = el("td", {}, el("a", { href: t.public_url, target: "_blank", rel: "noopener" }, t.id));
    if (t.reserved) name.append(el("span", { class: "reserved" }, "reserved"));
    const del = el("span", {}, el("button", { class: "danger", "data-delete": t.id, onclick: () => remove(t) }, t.reserved ? "Delete (keep name)" : "Delete"));
    if (t.reserved) del.append(" ", el("button", { class: "danger", "data-release": t.id, onclick: () => remove(t, true) }, "Delete and release name"));
    return el("tr", { "data-id": t.id },
      name,
      el("td", { class: t.state, "data-state": t.state }, t.state),
      el("td", {}, t.sessions),
      el("td", { title: t.last_seen_at }, ago(t.last_seen_seconds_ago)),
      el("td", { class: "requests" }, t.requests),
      el("td", {}, `${size(t.bytes_in)} / ${size(t.bytes_out)}`),
      el("td", {}, t.local_port == null ? "—" : t.local_port),
      el("td", {}, del));
  }

  async function load() {
    try {
      const data = await call("GET", "/console/api/tunnels");
      const rows = $("#rows");
      rows.textContent = "";
      for (const t of data.tunnels) rows.append(row(t));
      if (!data.tunnels.length) rows.append(el("tr", {}, el("td", { colspan: "8", class: "note" }, "No tunnels. Run azhexgate start --api-url … to create one.")));
      return true;
    } catch (err) {
      if (err.status === 401) {
        sessionStorage.removeItem(KEY);
        sessionStorage.removeItem(WHO);
        who();
        show(false);
        $("#signin-error").textContent = err.message;
        return false;
      }
      say(err.message, true);
      return false;
    }
  }

  async function remove(t, release) {
    let done = "";
    try {
      await call("DELETE", `/api/tunnels/${encodeURIComponent(t.id)}`);
      done = `Deleted tunnel ${t.id}.`;
      if (release) {
        await call("DELETE", `/api/names/${encodeURIComponent(t.id)}`);
        done = `Deleted tunnel ${t.id} and released the name: any key may take it now.`;
      }
    } catch (err) {
      say(done ? `${done} ${err.message}` : err.message, true);
      done = "";
    }
    await load(); // the list first, then the message: what it says is already on screen
    if (done) say(done);
  }

  /** Releases a reserved name that has no tunnel (DELETE /api/names/{name}). */
  async function release(name) {
    try {
      await call("DELETE", `/api/names/${encodeURIComponent(name)}`);
      $("#reserve-name").value = "";
      say(`Released ${name}: any key may take it now.`);
    } catch (err) {
      say(err.message, true);
    }
  }

  $("#signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("#key").value.trim());
    sessionStorage.removeItem(WHO);
    who();
    $("#key").value = "";
    $("#signin-error").textContent = "";
    show(true);
    if (await load()) say("Signed in.");
  });
  $("#signout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(WHO);
    who();
    $("#rows").textContent = "";
    show(false);
  });
  $("#refresh").addEventListener("click", () => load());
  $("#release-btn").addEventListener("click", () => {
    const name = $("#reserve-name").value.trim();
    if (name) void release(name);
    else say("Type the name to release.", true);
  });
  $("#reserve-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("#reserve-name").value.trim();
    try {
      await call("POST", "/api/tunnels", { subdomain: name });
      say(`Reserved ${name}: a tunnel with that name now exists for your key; azhexgate start --subdomain ${name} takes it.`);
      $("#reserve-name").value = "";
    } catch (err) {
      say(err.message, true);
    }
    await load();
  });

  const who = () => ($("#who").textContent = sessionStorage.getItem(KEY) ? sessionStorage.getItem(WHO) || "signed in with an API key" : "");
  (async () => {
    // signin.js (Entra ID) first: a return from the provider stores the token before we look
    const s = window.azhexgateSignIn ? await window.azhexgateSignIn.ready : { signedIn: false };
    if (s.error) $("#signin-error").textContent = s.error;
    if (sessionStorage.getItem(KEY)) {
      show(true);
      who();
      if ((await load()) && s.signedIn) say("Signed in.");
    } else show(false);
  })();
})();

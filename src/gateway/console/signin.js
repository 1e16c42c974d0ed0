// Console sign-in with the gateway's identity provider (Entra ID or any OIDC issuer): the
// authorization code flow with PKCE (RFC 7636), run here in the browser as a public client. The
// redirect URI is this page, {origin}/console/; the access token goes to sessionStorage (this tab
// only) under the same key as a pasted API key and is sent the same way, as a bearer header — no
// cookie carries authority. Nothing is refreshed: when the token expires the API answers 401 and
// the console asks to sign in again.
"use strict";
(() => {
  const KEY = "azhexgate.apiKey"; // the console's bearer: an API key or an access token
  const WHO = "azhexgate.who"; // a display name for the header (from the ID token; display only)
  const FLOW = "azhexgate.signin"; // { state, verifier } while the provider has the user
  const b64u = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const random = (n) => b64u(crypto.getRandomValues(new Uint8Array(n)));
  const redirectUri = () => `${location.origin}/console/`;

  /** Who the ID token names (unverified: shown, never trusted; the API checks the access token). */
  function nameOf(idToken) {
    try {
      const p = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(idToken.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0))));
      const mail = p.email || p.preferred_username;
      return p.name && mail ? `${p.name} <${mail}>` : p.name || mail || "";
    } catch {
      return "";
    }
  }

  async function settings() {
    const res = await fetch("/console/api/auth", { credentials: "omit", cache: "no-store" });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data.error && data.error.message) || `The gateway's sign-in settings answered HTTP ${res.status}.`);
    return data.oidc;
  }

  async function begin(oidc) {
    const verifier = random(32);
    const state = random(16);
    const challenge = b64u(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
    sessionStorage.setItem(FLOW, JSON.stringify({ state, verifier }));
    const u = new URL(oidc.authorization_endpoint);
    u.search = new URLSearchParams({
      client_id: oidc.client_id,
      response_type: "code",
      redirect_uri: redirectUri(),
      scope: oidc.scopes,
      state,
      code_challenge: challenge,
      code_challenge_method: "S256",
    }).toString();
    location.assign(u.toString());
  }

  /** Back from the provider with ?code&state (or ?error): redeem the code for tokens. */
  async function complete(oidc, q) {
    const flow = JSON.parse(sessionStorage.getItem(FLOW) || "null");
    sessionStorage.removeItem(FLOW);
    history.replaceState(null, "", "/console/"); // the code leaves the address bar (and history)
    if (q.get("error")) throw new Error(`The sign-in failed: ${q.get("error_description") || q.get("error")}`);
    if (!flow || flow.state !== q.get("state")) throw new Error("This sign-in answer does not belong to a sign-in started in this tab; sign in again.");
    const res = await fetch(oidc.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams({ grant_type: "authorization_code", code: q.get("code") || "", redirect_uri: redirectUri(), client_id: oidc.client_id, code_verifier: flow.verifier }).toString(),
      credentials: "omit",
      cache: "no-store",
    }).catch((e) => {
      throw new Error(`The identity provider's token endpoint could not be reached (${e.message}); is {api host}/console/ registered as a single-page application redirect URI?`);
    });
    const tok = await res.json().catch(() => ({}));
    if (!res.ok || !tok.access_token) throw new Error(`The identity provider refused the sign-in: ${tok.error_description || tok.error || `HTTP ${res.status}`}`);
    sessionStorage.setItem(KEY, tok.access_token);
    sessionStorage.setItem(WHO, tok.id_token ? nameOf(tok.id_token) : "");
  }

  window.azhexgateSignIn = {
    /** Resolves { available, signedIn, error } once a returning sign-in is complete. */
    ready: (async () => {
      let oidc;
      try {
        oidc = await settings();
      } catch (e) {
        return { available: false, signedIn: false, error: e.message };
      }
      if (!oidc) return { available: false, signedIn: false };
      const button = document.querySelector("#entra-btn");
      button.addEventListener("click", () => {
        button.disabled = true;
        begin(oidc).catch((e) => {
          button.disabled = false;
          document.querySelector("#signin-error").textContent = e.message;
        });
      });
      document.querySelector("#entra").hidden = false;
      const q = new URLSearchParams(location.search);
      if (!q.has("code") && !q.has("error")) return { available: true, signedIn: false };
      try {
        await complete(oidc, q);
        return { available: true, signedIn: true };
      } catch (e) {
        return { available: true, signedIn: false, error: e.message };
      }
    })(),
  };
})();

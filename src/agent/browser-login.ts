/**
 * `azhexgate login --browser`: the authorization code flow with PKCE for a public client, its
 * redirect caught by a one-shot server on the loopback interface (RFC 8252 §7.3: the provider
 * ignores the port of a loopback redirect URI; in Entra, register `http://127.0.0.1/callback`
 * under "Mobile and desktop applications").
 */
import { createHash, randomBytes } from "node:crypto";
import { type Endpoints, SignInError, type TokenSet } from "./oidc-client.ts";

const b64u = (b: Buffer) => b.toString("base64url");

function page(title: string, text: string): Response {
  return new Response(`<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body style="font-family:system-ui,sans-serif;margin:3em"><h1>${title}</h1><p>${text}</p></body></html>\n`, {
    headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
  });
}

/** Opens `url` in the platform's browser; failures are ignored (the URL is printed anyway). */
export function openBrowser(url: string): void {
  const cmd = process.platform === "darwin" ? ["open", url] : process.platform === "win32" ? ["cmd", "/c", "start", "", url] : ["xdg-open", url];
  try {
    Bun.spawn(cmd, { stdout: "ignore", stderr: "ignore", stdin: "ignore" }).unref();
  } catch {
    /* no browser here: the printed URL is the way */
  }
}

export async function browserSignIn(
  ep: Endpoints & { authorization_endpoint?: string },
  clientId: string,
  scopes: string,
  o: { onUrl: (url: string) => void; timeoutMs?: number },
): Promise<TokenSet> {
  if (!ep.authorization_endpoint) throw new SignInError("no_browser_flow", `The identity provider ${ep.issuer} has no authorization endpoint; use device-code sign-in.`);
  const verifier = b64u(randomBytes(32));
  const state = b64u(randomBytes(16));
  let settle!: { ok: (code: string) => void; fail: (e: Error) => void };
  const got = new Promise<string>((ok, fail) => (settle = { ok, fail }));
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const u = new URL(req.url);
      if (u.pathname !== "/callback") return new Response("not found", { status: 404 });
      if (u.searchParams.get("state") !== state) return page("Sign-in failed", "This answer does not belong to the sign-in in progress.");
      const error = u.searchParams.get("error");
      if (error) {
        settle.fail(new SignInError(error === "access_denied" ? "declined" : "sign_in_failed", `The sign-in failed: ${u.searchParams.get("error_description") ?? error}`));
        return page("Sign-in failed", "Return to the terminal.");
      }
      settle.ok(u.searchParams.get("code") ?? "");
      return page("Signed in", "You can close this tab and return to the terminal.");
    },
  });
  const redirectUri = `http://127.0.0.1:${server.port}/callback`;
  const auth = new URL(ep.authorization_endpoint);
  auth.search = new URLSearchParams({
    client_id: clientId,
    response_type: "code",
    redirect_uri: redirectUri,
    scope: scopes,
    state,
    code_challenge: b64u(createHash("sha256").update(verifier).digest()),
    code_challenge_method: "S256",
  }).toString();
  o.onUrl(auth.toString());
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const code = await Promise.race([
      got,
      new Promise<never>((_, fail) => {
        timer = setTimeout(() => fail(new SignInError("expired", "No sign-in arrived in time; run `azhexgate login` again.")), o.timeoutMs ?? 5 * 60_000);
      }),
    ]);
    const res = await fetch(ep.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier }).toString(),
      signal: AbortSignal.timeout(30_000),
    }).catch((e) => {
      throw new SignInError("idp_unreachable", `Cannot reach the identity provider (${(e as Error).message}).`);
    });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok || typeof body.access_token !== "string") throw new SignInError("sign_in_failed", `The sign-in failed: ${String(body.error_description ?? body.error ?? res.status)}`);
    return {
      access_token: body.access_token,
      refresh_token: typeof body.refresh_token === "string" ? body.refresh_token : undefined,
      expires_at: Date.now() + Number(body.expires_in ?? 3600) * 1000,
    };
  } finally {
    clearTimeout(timer);
    server.stop(true);
  }
}

/**
 * `azhexgate login`: GET {api}/api/auth (issuer, public client id, scopes), device authorization,
 * the URL and code on stderr (or a JSON line), poll — or, with --browser, code + PKCE through a
 * loopback redirect — then cache (0600). Exit 0 signed in; 2 the gateway
 * has no sign-in; 3 declined / expired / failed; 1 unreachable.
 */
import { gatewayKey, saveLogin, userOf, cachePath } from "./identity-cache.ts";
import { discover, pollDeviceCode, SignInError, startDeviceCode } from "./oidc-client.ts";

export async function runLogin(apiUrl: string, o: { json: boolean; env: Record<string, string | undefined>; browser?: boolean; open?: boolean }): Promise<number> {
  const base = gatewayKey(apiUrl);
  const say = (event: Record<string, unknown>, text: string) => (o.json ? console.log(JSON.stringify(event)) : console.error(text));
  let info: { oidc: { issuer: string; client_id: string; scopes: string } | null };
  try {
    const res = await fetch(`${base}/api/auth`, { signal: AbortSignal.timeout(15_000) });
    if (!res.ok) throw new Error(`it answered ${res.status}`);
    info = (await res.json()) as typeof info;
  } catch (e) {
    console.error(`azhexgate login: cannot ask ${base}/api/auth how to sign in (${(e as Error).message}); check --api-url.`);
    return 1;
  }
  if (!info.oidc) {
    console.error(`azhexgate login: the gateway at ${base} takes API keys only (no AZHEXGATE_OIDC_CLI_CLIENT_ID); use AZHEXGATE_API_KEY.`);
    return 2;
  }
  try {
    const ep = await discover(info.oidc.issuer);
    let tokens;
    if (o.browser) {
      const { browserSignIn, openBrowser } = await import("./browser-login.ts");
      tokens = await browserSignIn(ep, info.oidc.client_id, info.oidc.scopes, {
        onUrl: (url) => {
          say({ event: "browser", url }, `Sign in in your browser${o.open === false ? "" : " (opening it)"}: ${url}`);
          if (o.open !== false) openBrowser(url);
        },
      });
    } else {
      const dc = await startDeviceCode(ep, info.oidc.client_id, info.oidc.scopes);
      say(
        { event: "device_code", verification_uri: dc.verification_uri, user_code: dc.user_code, expires_in: dc.expires_in },
        `To sign in, open ${dc.verification_uri} in a browser and enter the code ${dc.user_code} (valid ${Math.round(dc.expires_in / 60)} min).`,
      );
      tokens = await pollDeviceCode(ep, info.oidc.client_id, dc);
    }
    const user = userOf(tokens.access_token);
    saveLogin(o.env, base, { ...tokens, issuer: info.oidc.issuer, client_id: info.oidc.client_id, scopes: info.oidc.scopes, user });
    say(
      { event: "signed_in", gateway: base, email: user.email ?? null, oid: user.oid ?? null, tenant: user.tid ?? null },
      `Signed in as ${user.email ?? user.oid ?? "unknown"} to ${base} (cached in ${cachePath(o.env)}).`,
    );
    return 0;
  } catch (e) {
    console.error(`azhexgate login: ${(e as Error).message}`);
    return e instanceof SignInError && e.code === "idp_unreachable" ? 1 : 3;
  }
}

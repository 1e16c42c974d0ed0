/**
 * The CLI's side of sign-in, with plain `fetch` against the issuer's discovery document: the
 * device authorization grant (RFC 8628) and the refresh-token grant (RFC 6749 §6). The same code
 * serves Entra ID, whose discovery document names its device endpoint
 * (`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode`,
 * https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code) and any other
 * OpenID provider — MSAL / @azure/identity accept Entra authorities only and do not hand out
 * refresh tokens, which a generic issuer (and our loopback test provider) needs.
 */

export interface Endpoints {
  issuer: string;
  token_endpoint: string;
  authorization_endpoint?: string;
  device_authorization_endpoint?: string;
}

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
  /** ms since the epoch */
  expires_at: number;
}

export class SignInError extends Error {
  override readonly name = "SignInError";
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export async function discover(issuer: string): Promise<Endpoints> {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  } catch (e) {
    throw new SignInError("idp_unreachable", `Cannot reach the identity provider at ${url} (${(e as Error).message}).`);
  }
  if (!res.ok) throw new SignInError("idp_unreachable", `The identity provider's discovery document ${url} answered ${res.status}.`);
  const doc = (await res.json()) as Endpoints;
  if (typeof doc.token_endpoint !== "string") throw new SignInError("idp_unreachable", `The discovery document ${url} names no token endpoint.`);
  return doc;
}

async function form(url: string, fields: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams(fields).toString(),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new SignInError("idp_unreachable", `Cannot reach the identity provider (${(e as Error).message}).`);
  }
  let body: Record<string, unknown> = {};
  try {
    body = (await res.json()) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

function tokenSet(body: Record<string, unknown>, now: number, previousRefresh?: string): TokenSet {
  if (typeof body.access_token !== "string") throw new SignInError("bad_answer", "The identity provider answered without an access token.");
  const expiresIn = Number(body.expires_in ?? 3600);
  return {
    access_token: body.access_token,
    refresh_token: typeof body.refresh_token === "string" ? body.refresh_token : previousRefresh,
    expires_at: now + (Number.isFinite(expiresIn) ? expiresIn : 3600) * 1000,
  };
}

export interface DeviceCode {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete?: string;
  expires_in: number;
  interval: number;
  message?: string;
}

export async function startDeviceCode(ep: Endpoints, clientId: string, scopes: string): Promise<DeviceCode> {
  if (!ep.device_authorization_endpoint) throw new SignInError("no_device_flow", `The identity provider ${ep.issuer} does not offer device-code sign-in.`);
  const r = await form(ep.device_authorization_endpoint, { client_id: clientId, scope: scopes });
  if (r.status !== 200 || typeof r.body.device_code !== "string" || typeof r.body.user_code !== "string") {
    throw new SignInError("device_code_refused", `The identity provider refused to start a sign-in: ${String(r.body.error_description ?? r.body.error ?? r.status)}`);
  }
  const b = r.body as Record<string, unknown>;
  return {
    device_code: b.device_code as string,
    user_code: b.user_code as string,
    verification_uri: String(b.verification_uri ?? b.verification_url),
    verification_uri_complete: typeof b.verification_uri_complete === "string" ? b.verification_uri_complete : undefined,
    expires_in: Number(b.expires_in ?? 900),
    interval: Number(b.interval ?? 5),
    message: typeof b.message === "string" ? b.message : undefined,
  };
}

/** Polls the token endpoint until the user finishes (or declines, or the code expires). */
export async function pollDeviceCode(ep: Endpoints, clientId: string, dc: DeviceCode, o: { sleep?: (ms: number) => Promise<void>; now?: () => number } = {}): Promise<TokenSet> {
  const sleep = o.sleep ?? ((ms: number) => Bun.sleep(ms));
  const now = o.now ?? Date.now;
  const deadline = now() + dc.expires_in * 1000;
  let interval = Math.max(1, dc.interval) * 1000;
  while (now() < deadline) {
    await sleep(interval);
    const r = await form(ep.token_endpoint, { grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: dc.device_code, client_id: clientId });
    if (r.status === 200) return tokenSet(r.body, now());
    const err = String(r.body.error ?? "");
    if (err === "authorization_pending") continue;
    if (err === "slow_down") {
      interval += 5000; // RFC 8628 §3.5
      continue;
    }
    if (err === "access_denied" || err === "authorization_declined") throw new SignInError("declined", "The sign-in was declined.");
    if (err === "expired_token") break;
    throw new SignInError("sign_in_failed", `The sign-in failed: ${String(r.body.error_description ?? err ?? r.status)}`);
  }
  throw new SignInError("expired", "The sign-in code expired before it was used; run `azhexgate login` again.");
}

export async function refresh(ep: Endpoints, clientId: string, refreshToken: string, scopes: string): Promise<TokenSet> {
  const r = await form(ep.token_endpoint, { grant_type: "refresh_token", refresh_token: refreshToken, client_id: clientId, scope: scopes });
  if (r.status !== 200) throw new SignInError("refresh_failed", "Your sign-in has expired or was revoked; run `azhexgate login` again.");
  return tokenSet(r.body, Date.now(), refreshToken);
}

/** The claims of a JWT, unverified (for display only: the gateway verifies). */
export function peekClaims(jwt: string): Record<string, unknown> {
  try {
    return JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
  } catch {
    return {};
  }
}

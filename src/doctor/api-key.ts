/**
 * Check 4: the API key. `GET /api/tunnels` with the key: 200 means accepted; 401, 403, 429 and
 * the rest each get their own sentence and fix. The key is sent only in the header, never shown.
 */
import { describeError, fetchWith, readText, type NetOptions } from "./net.ts";
import type { Target } from "./target.ts";
import { fail, pass, skip, type Outcome } from "./types.ts";

/** `{ error: { code, message } }` of a management API answer, if it is one. */
export function apiError(text: string): { code?: string; message?: string } {
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
    return { code: typeof e?.code === "string" ? e.code : undefined, message: typeof e?.message === "string" ? e.message : undefined };
  } catch {
    return {};
  }
}

/** The fail outcome for a non-2xx answer of the management API (shared with the tunnel steps). */
export function apiFailure(name: string, what: string, res: Response, text: string): Outcome {
  const e = apiError(text);
  const said = e.message ? `: ${e.message}` : "";
  switch (res.status) {
    case 401:
      return fail(name, `${what} → 401: API key rejected`, "Check --api-key / AZHEXGATE_API_KEY: the gateway does not know this key (operators: AZHEXGATE_API_KEYS, the keys file or the Key Vault secret).");
    case 403:
      return fail(
        name,
        `${what} → 403 ${e.code ?? "forbidden"}: the management API does not accept calls from this address`,
        "Ask the operator to add your public address to AZHEXGATE_API_ALLOW_CIDRS (behind a proxy or Front Door, AZHEXGATE_TRUSTED_PROXIES must list it so the gateway sees your real address).",
      );
    case 429: {
      const after = res.headers.get("retry-after");
      return fail(name, `${what} → 429: too many failed authentications from this address`, `Wait${after ? ` ${after} s` : ""} and retry with the right key.`);
    }
    case 404:
      if (res.headers.get("x-azhexgate-error") === "tunnel_not_found") {
        return fail(name, `${what} → 404: the gateway does not serve its management API on this host`, "Use the gateway's base domain in --api-url: https://api.{domain} or https://{domain} (not an IP address or another host name).");
      }
      return fail(name, `${what} → 404${said}`, e.code ? "The gateway answered but does not know this route; is it a current azhexgate version?" : "No management API at this URL: --api-url must be the gateway's apex or api. host.");
    default:
      return fail(
        name,
        `${what} → ${res.status} ${e.code ?? ""}${said}`.trim(),
        res.status >= 500 ? "The gateway failed; its log has the details (relay credentials, registry)." : "See the message above.",
      );
  }
}

export async function checkApiKey(t: Target, apiKey: string | undefined, net: NetOptions): Promise<Outcome> {
  if (!apiKey) return skip("api_key", "no API key given: pass --api-key or set AZHEXGATE_API_KEY to check it and a tunnel round trip");
  const what = "GET /api/tunnels";
  let res: Response;
  try {
    res = await fetchWith(`${t.base}/api/tunnels`, net, { headers: { "x-azhexgate-apikey": apiKey, accept: "application/json" } });
  } catch (err) {
    return fail("api_key", `${what} failed: ${describeError(err, net.timeoutMs)}`, `Check that ${t.base} is reachable from here.`);
  }
  const text = await readText(res, 1 << 20);
  if (!res.ok) return apiFailure("api_key", what, res, text);
  let count: number | undefined;
  try {
    const list = (JSON.parse(text) as { tunnels?: unknown }).tunnels;
    if (Array.isArray(list)) count = list.length;
  } catch {
    /* judged below */
  }
  if (count === undefined) return fail("api_key", `${what} → ${res.status} but not the tunnel list`, "--api-url does not point at an azhexgate management API.");
  return pass("api_key", `API key accepted (${count} tunnel${count === 1 ? "" : "s"} on this key)`);
}

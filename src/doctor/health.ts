/**
 * Check 3: the gateway's probes on the API host. `/healthz` answers 200 when the process is up;
 * `/readyz` answers 200 when it can serve (registry reachable, keys loaded…) and 503 otherwise,
 * with the reason in its body (plain text, or JSON with `reason` / `message`), which is shown.
 */
import { describeError, fetchWith, isTlsError, readText, type NetOptions } from "./net.ts";
import type { Target } from "./target.ts";
import { fail, pass, type Outcome } from "./types.ts";

/** The first line of a probe body, or the `reason` / `message` of a JSON one, at most 300 characters. */
export function probeReason(body: string): string {
  let text = body.trim();
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    const pick = (o: unknown): string | undefined => {
      if (!o || typeof o !== "object") return undefined;
      const r = o as Record<string, unknown>;
      for (const k of ["reason", "message", "detail", "status"]) if (typeof r[k] === "string" && r[k]) return r[k] as string;
      return pick(r.error);
    };
    text = pick(v) ?? text;
  } catch {
    /* plain text */
  }
  const line = text.split("\n").map((l) => l.trim()).filter(Boolean).join("; ");
  return line.length > 300 ? `${line.slice(0, 300)}…` : line || "(empty body)";
}

export async function checkHealthz(t: Target, net: NetOptions): Promise<Outcome> {
  const url = `${t.base}/healthz`;
  let res: Response;
  try {
    res = await fetchWith(url, net);
  } catch (err) {
    const why = describeError(err, net.timeoutMs);
    const fix = isTlsError(err)
      ? "Fix the certificate first (see the tls lines), or pass --ca FILE for a private CA."
      : `Check that the gateway is running and reachable at ${t.base} (firewall, access restrictions, the platform's app status).`;
    return fail("health", `GET ${url} failed: ${why}`, fix);
  }
  const body = await readText(res);
  if (res.status === 200) return pass("health", `GET /healthz → 200 ${probeReason(body)}`);
  const location = res.headers.get("location");
  if (res.status >= 300 && res.status < 400 && location) {
    return fail("health", `GET /healthz → ${res.status} redirect to ${location}`, `The front end redirects: run doctor with the URL it redirects to (e.g. --api-url ${new URL(location, url).origin}).`);
  }
  const fix =
    res.status === 404
      ? `Nothing at ${url}: is --api-url the gateway's apex or api. host? A 404 from the platform itself means the host name is not bound to the app.`
      : `The gateway process is not healthy (${res.status}); look at its log and the platform's restart count.`;
  return fail("health", `GET /healthz → ${res.status} ${probeReason(body)}`, fix);
}

export async function checkReadyz(t: Target, net: NetOptions): Promise<Outcome> {
  const url = `${t.base}/readyz`;
  let res: Response;
  try {
    res = await fetchWith(url, net);
  } catch (err) {
    return fail("ready", `GET ${url} failed: ${describeError(err, net.timeoutMs)}`, "The gateway answered /healthz but not /readyz; look at its log.");
  }
  const reason = probeReason(await readText(res));
  if (res.status === 200) return pass("ready", `GET /readyz → 200 ${reason}`);
  const fix = res.headers.get("x-azhexgate-error") === "gateway_draining"
    ? "The gateway is shutting down (a restart or a new revision); retry in a minute."
    : "The gateway runs but cannot serve yet: the reason above says what it waits for (registry, API keys secret, relay role assignment); see its log, fix that, and it becomes ready without a restart.";
  return fail("ready", `GET /readyz → ${res.status}: ${reason}`, fix);
}

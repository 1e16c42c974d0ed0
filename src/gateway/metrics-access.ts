/**
 * Who may read `/metrics`: it lists every tunnel id with its traffic, so a deployed gateway does
 * not show it to the internet (AZHEXGATE_METRICS: `private` by default, `public`, `off`).
 * Private: the loopback peer (a sidecar scraper), an address in the management API allow-list
 * (AZHEXGATE_API_ALLOW_CIDRS, when set), or `Authorization: Bearer <AZHEXGATE_METRICS_TOKEN>`.
 */
import { timingSafeEqual } from "node:crypto";
import { isLoopbackHost } from "../config.ts";
import type { AccessPolicy } from "../api/access.ts";
import { type GatewayError, publicError } from "./errors.ts";

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function metricsAccessPolicy(
  mode: "off" | "private" | "public",
  token: string | undefined,
  access: Pick<AccessPolicy, "allowed">,
  allowListSet: boolean,
): ((req: Request, address: string) => GatewayError | null) | undefined {
  if (mode === "public") return undefined;
  const off = publicError("metrics_off");
  if (mode === "off") return () => off;
  const denied = publicError("metrics_forbidden");
  return (req, address) => {
    const auth = req.headers.get("authorization");
    if (token && auth && /^bearer /i.test(auth) && sameSecret(auth.slice(7).trim(), token)) return null;
    if (address && isLoopbackHost(address)) return null;
    if (allowListSet && address && access.allowed(address)) return null;
    return denied;
  };
}

/**
 * Where doctor looks, derived from the API URL alone: the host and port the API answers on, the
 * gateway's base domain (`api.example.com` → `example.com`; the apex `example.com` is its own
 * base), the apex and `api.` names, and a random name under the wildcard that no tunnel uses.
 * IP addresses have no base domain (DNS and wildcard checks are skipped then). Pure.
 */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";

export interface Target {
  /** `https://api.example.com` (no path, no trailing slash); routes live under `/api/`. */
  base: string;
  scheme: "http" | "https";
  /** The API URL's host name (brackets stripped for IPv6). */
  host: string;
  port: number;
  /** `:8443`, or "" for the scheme's default port. */
  portSuffix: string;
  isIp: boolean;
  /** The gateway's base domain, or undefined for an IP address. */
  domain?: string;
  apexHost?: string;
  apiHost?: string;
  /** A random name under `*.{domain}` that no tunnel uses, e.g. `azhexgate-doctor-1a2b3c4d.example.com`. */
  probeHost?: string;
  /** True on loopback names and addresses (plain http is expected there). */
  local: boolean;
}

export class TargetError extends Error {
  override readonly name = "TargetError";
}

export function parseTarget(apiUrl: string, probeLabel = `azhexgate-doctor-${randomBytes(4).toString("hex")}`): Target {
  let u: URL;
  try {
    u = new URL(apiUrl.trim());
  } catch {
    throw new TargetError(`--api-url "${apiUrl}" is not a URL; give the gateway's management API, e.g. https://api.example.com`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new TargetError(`--api-url must start with https:// (or http:// for a local gateway), got "${u.protocol}"`);
  }
  if (u.username || u.password) throw new TargetError("--api-url must not contain a user name or password; pass the key with --api-key or AZHEXGATE_API_KEY");
  const scheme = u.protocol === "https:" ? "https" : "http";
  const host = u.hostname.replace(/^\[|\]$/g, "").toLowerCase().replace(/\.$/, "");
  const port = u.port ? Number(u.port) : scheme === "https" ? 443 : 80;
  const isIp = isIP(host) !== 0;
  const path = u.pathname.replace(/\/+$/, "").replace(/\/api$/, "");
  const base = `${scheme}://${u.host}${path}`;
  const local = isIp ? /^(127\.|::1$|0:0:0:0:0:0:0:1$)/.test(host) : host === "localhost" || host.endsWith(".localhost");
  const t: Target = { base, scheme, host, port, portSuffix: u.port ? `:${u.port}` : "", isIp, local };
  if (!isIp) {
    const rest = host.slice(4);
    const domain = host.startsWith("api.") && (rest.includes(".") || rest === "localhost") ? rest : host;
    t.domain = domain;
    t.apexHost = domain;
    t.apiHost = `api.${domain}`;
    t.probeHost = `${probeLabel}.${domain}`;
  }
  return t;
}

/** Origin of tunnel `id` as reached through the same front door as the API (scheme and port). */
export function tunnelOrigin(t: Target, id: string): string | undefined {
  return t.domain ? `${t.scheme}://${id}.${t.domain}${t.portSuffix}` : undefined;
}

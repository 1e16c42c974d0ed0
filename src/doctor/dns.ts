/**
 * Check 1: DNS. The API URL's host must resolve (nothing else can work otherwise), a random name
 * under `*.{domain}` must resolve (that is where every tunnel lives), and the other management
 * name (apex or `api.`) is reported as a warning when missing. An IP address skips all of it.
 */
import { describeError, resolve } from "./net.ts";
import type { Target } from "./target.ts";
import { fail, pass, skip, warn, type Outcome } from "./types.ts";

export interface DnsResult {
  outcomes: Outcome[];
  /** The API host resolves (the run stops otherwise). */
  apiHostOk: boolean;
  /** The wildcard probe name resolves (the tunnel hostnames can be reached). */
  wildcardOk: boolean;
}

function lookupFailure(err: unknown, timeoutMs: number): string {
  const code = String((err as { code?: string })?.code ?? "");
  return /ENOTFOUND|NODATA|NONAME/i.test(code) ? "does not resolve (no such record)" : `cannot be resolved: ${describeError(err, timeoutMs)}`;
}

interface Name {
  name: "dns.apex" | "dns.api" | "dns.wildcard";
  host: string;
  required: boolean;
}

type Lookup = { ok: true; a: string[] } | { ok: false; err: unknown };

/** The line for one name. */
function judge(t: Target, n: Name, r: Lookup, timeoutMs: number): Outcome {
  const label = n.name === "dns.wildcard" ? `*.${t.domain} (tried ${n.host})` : n.host;
  if (r.ok) return pass(n.name, `${label} resolves to ${r.a.join(", ")}`);
  const why = lookupFailure(r.err, timeoutMs);
  if (n.name === "dns.wildcard") {
    return fail(n.name, `${label} ${why}`, `Add a wildcard DNS record *.${t.domain} pointing where ${t.host} points (a CNAME to the gateway's front end); every tunnel is served at {id}.${t.domain}.`);
  }
  if (n.required) {
    const record = n.host === t.apexHost ? `an A record (or ALIAS / CNAME flattening) for the apex ${n.host}` : `a CNAME record ${n.host} → the gateway's front end`;
    return fail(n.name, `${label} ${why}`, `Add ${record}, or check the spelling of --api-url.`);
  }
  const other = n.host === t.apexHost ? t.apiHost : t.apexHost;
  return warn(n.name, `${label} ${why} (optional: the management API also answers on ${other})`, `Nothing to do if you always use ${t.scheme}://${other}; add a DNS record for ${n.host} to use it too.`);
}

export async function checkDns(t: Target, timeoutMs: number): Promise<DnsResult> {
  if (t.isIp || !t.domain) {
    return { outcomes: [skip("dns", `${t.host} is an IP address: no DNS names to check (tunnel hostnames cannot be derived from it)`)], apiHostOk: true, wildcardOk: true };
  }
  const apiIsApex = t.host === t.apexHost;
  const names: Name[] = [
    { name: "dns.apex", host: t.apexHost!, required: apiIsApex },
    { name: "dns.api", host: t.apiHost!, required: !apiIsApex },
    { name: "dns.wildcard", host: t.probeHost!, required: true },
  ];
  // Looked up together; each line carries its own lookup time.
  const outcomes = await Promise.all(
    names.map(async (n) => {
      const t0 = performance.now();
      const r: Lookup = await resolve(n.host, timeoutMs).then((a) => ({ ok: true as const, a }), (err: unknown) => ({ ok: false as const, err }));
      return { ...judge(t, n, r, timeoutMs), ms: Math.round(performance.now() - t0) };
    }),
  );
  const failed = (name: string) => outcomes.some((o) => o.name === name && o.status === "fail");
  return { outcomes, apiHostOk: !failed(apiIsApex ? "dns.apex" : "dns.api"), wildcardOk: !failed("dns.wildcard") };
}

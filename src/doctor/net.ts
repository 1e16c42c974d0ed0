/**
 * Doctor's network primitives: name lookups with Bun's resolver (the one `fetch`, `Bun.connect`
 * and the agent use; it also answers `*.localhost` with loopback, RFC 6761 §6.3), `fetch` with a
 * deadline and the `--ca` certificates trusted on top of the system roots, and one sentence for
 * any network error. Nothing here ever sees an API key in a message.
 */
import { rootCertificates } from "node:tls";

export interface NetOptions {
  /** Extra trusted CA certificates (PEM). */
  ca?: string;
  timeoutMs: number;
}

/** Rejects with a TimeoutError-named error when `p` takes longer than `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new Error(`${what}: no answer within ${Math.round(ms / 100) / 10} s`);
      e.name = "TimeoutError";
      reject(e);
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** The addresses `name` resolves to (throws the resolver's error, e.g. code DNS_ENOTFOUND). */
export async function resolve(name: string, timeoutMs: number): Promise<string[]> {
  const found = await withTimeout(Bun.dns.lookup(name), timeoutMs, `DNS lookup of ${name}`);
  return [...new Set(found.map((a) => a.address))];
}

/** The trusted roots for TLS: the system's, plus `--ca`. */
export function trustedCa(ca: string | undefined): string[] | undefined {
  return ca ? [...rootCertificates, ca] : undefined;
}

/** `fetch` with a deadline, no redirects followed, and `--ca` trusted. */
export function fetchWith(url: string, net: NetOptions, init: RequestInit = {}): Promise<Response> {
  const ca = trustedCa(net.ca);
  return fetch(url, {
    redirect: "manual",
    signal: AbortSignal.timeout(net.timeoutMs),
    ...init,
    ...(ca ? { tls: { ca } } : {}),
  } as RequestInit);
}

/** Reads a response body as text, at most `max` characters (the rest is cancelled). */
export async function readText(res: Response, max = 4096): Promise<string> {
  const text = await res.text().catch(() => "");
  return text.length > max ? text.slice(0, max) : text;
}

const TLS_CODES: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: "the certificate is self-signed",
  SELF_SIGNED_CERT_IN_CHAIN: "the certificate chain ends in an untrusted (self-signed) root",
  UNABLE_TO_GET_ISSUER_CERT: "the certificate's issuer is not trusted",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the certificate's issuer is not trusted (missing intermediate or private CA)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the certificate chain is incomplete (intermediate certificate missing)",
  CERT_HAS_EXPIRED: "the certificate has expired",
  CERT_NOT_YET_VALID: "the certificate is not valid yet",
  ERR_TLS_CERT_ALTNAME_INVALID: "the certificate does not cover this host name",
};

/** True when `err` is a TLS verification failure (as opposed to a network one). */
export function isTlsError(err: unknown): boolean {
  const code = String((err as { code?: string })?.code ?? "");
  return code in TLS_CODES || /CERT|SSL|TLS/.test(code);
}

/** One sentence for a failed connection or request; `timeoutMs` names the deadline. */
export function describeError(err: unknown, timeoutMs?: number): string {
  // The most specific cause that carries a code (e.g. RelayError → WsConnectError → ECONNREFUSED).
  let e = err as { name?: string; code?: string; message?: string; cause?: unknown } | undefined;
  for (let c = e, i = 0; c && i < 5; c = c.cause as typeof e, i++) if (typeof c.code === "string" && c.code) e = c;
  if (e?.name === "TimeoutError" || e?.name === "AbortError") {
    return timeoutMs ? `no answer within ${Math.round(timeoutMs / 100) / 10} s` : "no answer in time";
  }
  const code = String(e?.code ?? "");
  if (code === "ConnectionRefused" || code === "ECONNREFUSED") {
    return "connection refused (nothing is listening there)";
  }
  if (/ENOTFOUND|DNS_/i.test(code)) return "the name does not resolve";
  if (/ECONNRESET|ConnectionClosed/i.test(code)) return "the connection was closed before an answer";
  if (code in TLS_CODES) return `TLS: ${TLS_CODES[code]} (${code})`;
  const msg = e?.message ?? String(err);
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}

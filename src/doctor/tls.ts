/**
 * Check 2: TLS (https API URLs only). Reads the certificate the front end serves for the API host
 * and for a random name under `*.{domain}` (SNI), with `node:tls`: is the chain trusted (system
 * roots, plus `--ca`), is it within its validity dates, and do its names cover the host — the
 * wildcard check names `*.{domain}` when it is missing. Connects to the address Bun's resolver
 * gives (node:net's getaddrinfo does not answer `*.localhost`), with SNI set to the name.
 */
import { isIP } from "node:net";
import { checkServerIdentity, connect, type PeerCertificate } from "node:tls";
import { describeError, resolve, trustedCa, withTimeout } from "./net.ts";
import type { Target } from "./target.ts";
import { fail, pass, skip, warn, type Outcome } from "./types.ts";

/** Warn when a certificate expires sooner than this. */
export const EXPIRY_WARNING_DAYS = 14;

export interface ServedCert {
  cert: PeerCertificate;
  /** Chain verification against the trusted roots (not the name: checked separately). */
  trusted: boolean;
  error?: string;
}

/**
 * Verification codes that only say the name does not match (judged by checkServerIdentity below),
 * not that the chain is untrusted: Node's and Bun's code for the SNI name check, and OpenSSL's
 * X509_V_ERR_HOSTNAME_MISMATCH / IP_ADDRESS_MISMATCH as node:tls names them. Codes, never text.
 */
const NAME_MISMATCH_CODES = new Set(["ERR_TLS_CERT_ALTNAME_INVALID", "HOSTNAME_MISMATCH", "IP_ADDRESS_MISMATCH"]);

/** Opens a TLS connection to `host:port` (SNI `host`) and returns the certificate served. */
export async function fetchCertificate(host: string, port: number, ca: string | undefined, timeoutMs: number): Promise<ServedCert> {
  const address = isIP(host) ? host : (await resolve(host, timeoutMs))[0]!;
  const { promise, resolve: done, reject } = Promise.withResolvers<ServedCert>();
  const socket = connect({
    host: address,
    port,
    servername: isIP(host) ? undefined : host,
    ca: trustedCa(ca),
    rejectUnauthorized: false,
    ALPNProtocols: ["http/1.1"],
  });
  socket.once("secureConnect", () => {
    const cert = socket.getPeerCertificate(false);
    const error = socket.authorizationError ? String((socket.authorizationError as { code?: string }).code ?? socket.authorizationError) : undefined;
    // A name mismatch shows up here too when SNI is set; names are judged by checkServerIdentity.
    const trusted = socket.authorized || (error !== undefined && NAME_MISMATCH_CODES.has(error));
    done({ cert, trusted, error: trusted ? undefined : error });
    socket.end();
  });
  socket.once("error", reject);
  try {
    return await withTimeout(promise, timeoutMs, `TLS handshake with ${host}:${port}`);
  } finally {
    socket.destroy();
  }
}

function names(cert: PeerCertificate): string {
  const san = cert.subjectaltname?.replace(/DNS:|IP Address:/g, "").trim();
  return san || (cert.subject?.CN ? `CN=${cert.subject.CN}` : "no names");
}

const issuerOf = (cert: PeerCertificate) => cert.issuer?.O ?? cert.issuer?.CN ?? "unknown issuer";

const UNTRUSTED_FIX = (ca: boolean) =>
  ca
    ? "The certificate does not chain to the --ca file or a public root: check that --ca holds the CA that issued it (PEM), and that the server sends its intermediate certificates."
    : "Serve a certificate issued by a public CA, with its intermediate chain (the tunnel names need a wildcard certificate); for a private CA pass --ca FILE.";

/** Judges one served certificate for `host`; `label` is what the line names (the host or `*.{domain}`). */
export function judgeCertificate(name: string, host: string, label: string, served: ServedCert, hasCa: boolean, now = Date.now()): Outcome {
  const { cert } = served;
  const until = Date.parse(cert.valid_to);
  const from = Date.parse(cert.valid_from);
  if (Number.isFinite(until) && until < now) {
    return fail(name, `the certificate for ${host} expired on ${new Date(until).toISOString().slice(0, 10)}`, "Renew the certificate and bind the new one on the gateway's front end.");
  }
  if (Number.isFinite(from) && from > now) {
    return fail(name, `the certificate for ${host} is not valid before ${new Date(from).toISOString()}`, "Check the server's clock and this machine's clock, or bind a certificate that is valid now.");
  }
  if (!served.trusted) {
    return fail(name, `the certificate for ${host} (issued by ${issuerOf(cert)}) is not trusted: ${served.error ?? "verification failed"}`, UNTRUSTED_FIX(hasCa));
  }
  const mismatch = checkServerIdentity(host, cert);
  if (mismatch) {
    const fix =
      label.startsWith("*.")
        ? `Bind a certificate that covers ${label} (a wildcard certificate) for the tunnel hostnames; it must be served for every {id}.${label.slice(2)}.`
        : `Bind a certificate whose subject alternative names include ${host}.`;
    return fail(name, `the certificate served for ${host} covers ${names(cert)} but not ${label}`, fix);
  }
  const days = Math.floor((until - now) / 86_400_000);
  const summary = `the certificate for ${label} is trusted (issued by ${issuerOf(cert)}), covers ${names(cert)}, valid until ${new Date(until).toISOString().slice(0, 10)}`;
  if (Number.isFinite(until) && days < EXPIRY_WARNING_DAYS) {
    return warn(name, `${summary}: expires in ${days} day(s)`, "Renew the certificate now and bind the new one before this date.");
  }
  return pass(name, summary);
}

export interface TlsResult {
  outcomes: Outcome[];
  apiOk: boolean;
  wildcardOk: boolean;
}

export async function checkTls(t: Target, o: { ca?: string; timeoutMs: number; wildcardResolves: boolean }): Promise<TlsResult> {
  if (t.scheme === "http") {
    const outcome = t.local
      ? skip("tls", `${t.base} is plain http on this machine: no certificate to check`)
      : warn("tls", `${t.base} is plain http: API keys and listener tokens would cross the network unencrypted`, `Serve the gateway over https (a certificate for ${t.apiHost ?? t.host} and *.${t.domain ?? "your domain"}) and use --api-url https://….`);
    return { outcomes: [outcome], apiOk: true, wildcardOk: true };
  }
  const outcomes: Outcome[] = [];
  let t0 = performance.now();
  const took = () => Math.round(performance.now() - t0);
  let apiOk = false;
  try {
    const o1 = judgeCertificate("tls.api", t.host, t.host, await fetchCertificate(t.host, t.port, o.ca, o.timeoutMs), !!o.ca);
    apiOk = o1.status !== "fail";
    outcomes.push({ ...o1, ms: took() });
  } catch (err) {
    outcomes.push({ ...fail("tls.api", `no TLS connection to ${t.host}:${t.port}: ${describeError(err, o.timeoutMs)}`, `Check that the gateway's front end serves https on port ${t.port} for ${t.host}.`), ms: took() });
  }
  if (!t.probeHost) return { outcomes, apiOk, wildcardOk: true };
  const label = `*.${t.domain}`;
  if (!o.wildcardResolves) {
    outcomes.push({ ...skip("tls.wildcard", `certificate for ${label} not checked: ${t.probeHost} does not resolve`), ms: 0 });
    return { outcomes, apiOk, wildcardOk: false };
  }
  let wildcardOk = false;
  t0 = performance.now();
  try {
    const o2 = judgeCertificate("tls.wildcard", t.probeHost, label, await fetchCertificate(t.probeHost, t.port, o.ca, o.timeoutMs), !!o.ca);
    wildcardOk = o2.status !== "fail";
    outcomes.push({ ...o2, detail: o2.status === "pass" ? `${o2.detail} (served for ${t.probeHost})` : o2.detail, ms: took() });
  } catch (err) {
    outcomes.push({ ...fail("tls.wildcard", `no TLS connection to ${t.probeHost}:${t.port}: ${describeError(err, o.timeoutMs)}`, `Bind ${label} with a certificate on the gateway's front end (port ${t.port}).`), ms: took() });
  }
  return { outcomes, apiOk, wildcardOk };
}

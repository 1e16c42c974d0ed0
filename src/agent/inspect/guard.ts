/**
 * Who may use the inspector: only this machine, and only pages it serves itself. A peer that is
 * not loopback is refused, and so is a request whose Host is not a loopback name (a DNS-rebinding
 * page reaches 127.0.0.1 under its own host name) or whose Origin is another site (a page on
 * another port or host must not replay requests or read captured bodies). Pure functions.
 */

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function loopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false;
  const a = addr.toLowerCase().replace(/^::ffff:/, "");
  return a === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

const LOOPBACK_NAMES = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** `127.0.0.1:4040`, `localhost:4040` or `[::1]:4040` with our own port (the port may be left out only for 80). */
export function loopbackHost(host: string | null, port: number): boolean {
  if (!host) return false;
  const m = /^(\[[0-9a-f:.]+\]|[^:]+)(?::(\d{1,5}))?$/i.exec(host.trim().toLowerCase());
  if (!m || !LOOPBACK_NAMES.has(m[1]!)) return false;
  return Number(m[2] ?? 80) === port;
}

/** No Origin (curl, scripts), or one of our own origins. */
export function sameOrigin(origin: string | null, port: number): boolean {
  if (origin === null) return true;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false;
  }
  return u.protocol === "http:" && loopbackHost(u.host, port);
}

/** Why a request is refused (a sentence), or undefined when it may go on. */
export function refusal(peer: string | undefined, headers: Headers, port: number): string | undefined {
  if (!loopbackAddress(peer)) return "The inspector only answers this machine (loopback).";
  if (!loopbackHost(headers.get("host"), port)) return `The inspector only answers Host 127.0.0.1:${port} or localhost:${port} (DNS-rebinding protection).`;
  if (!sameOrigin(headers.get("origin"), port)) return "Cross-site requests to the inspector are refused: open it at its own address.";
  if (headers.get("sec-fetch-site") === "cross-site") return "Cross-site requests to the inspector are refused: open it at its own address.";
  return undefined;
}

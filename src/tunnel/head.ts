/**
 * The session handshake (a text message) with version negotiation, and the tunnel protocol v1
 * JSON heads (OPEN / RESPONSE; v2's binary heads are in head-binary.ts). Pure validation: hostile
 * input from the other end of the tunnel becomes an `{ error }`, never a throw and never a value
 * of the wrong shape.
 */
import { MAX_HEAD_PAYLOAD, jsonPayload, parseJsonPayload } from "./frame.ts";

/** Header lists keep order and repeats (several Set-Cookie stay several). */
export type HeaderList = Array<[name: string, value: string]>;

export interface Hello {
  /** The lowest version spoken (a v1 peer checks it for equality with 1). */
  azhexgate: number;
  /** Every version spoken, ascending; a hello without it speaks exactly `[azhexgate]`. */
  versions: number[];
  role: "gateway" | "agent";
  /** Optional features, e.g. "ws". Unknown ones are ignored. */
  features: string[];
  /** Initial per-stream window the sender of this hello grants (bytes). */
  window: number;
  /** v2: initial session-level window the sender grants (bytes); absent = unlimited. */
  sessionWindow?: number;
}

export interface RequestHead {
  kind: "http" | "ws";
  method: string;
  /** Origin-form target, byte-identical to what the public client sent (`/p?q`). */
  target: string;
  headers: HeaderList;
  /** Public client's address, for X-Forwarded-For. */
  remote?: { address: string; port: number };
  /** WebSocket subprotocols offered by the public client (kind "ws"). */
  protocols?: string[];
}

export interface ResponseHead {
  status: number;
  headers: HeaderList;
  /** Subprotocol the origin chose (kind "ws", status 101). */
  protocol?: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export const MAX_HEADERS = 256;

function headerList(v: unknown): HeaderList | null {
  if (!Array.isArray(v) || v.length > MAX_HEADERS) return null;
  const out: HeaderList = [];
  for (const h of v) {
    if (!Array.isArray(h) || h.length !== 2) return null;
    const [n, val] = h as unknown[];
    if (typeof n !== "string" || typeof val !== "string" || !TOKEN.test(n) || /[\r\n\0]/.test(val)) return null;
    out.push([n, val]);
  }
  return out;
}

export function helloMessage(h: Hello): string {
  return JSON.stringify(h);
}

export function parseHello(text: string): Hello | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { error: "hello is not JSON" };
  }
  if (!isObj(v) || !posInt(v.azhexgate)) return { error: "not an azhexgate hello" };
  if (v.role !== "gateway" && v.role !== "agent") return { error: "hello has no valid role" };
  const window = posInt(v.window) ? v.window : 0;
  if (!window) return { error: "hello has no valid window" };
  const features = Array.isArray(v.features) ? v.features.filter((f): f is string => typeof f === "string").slice(0, 64) : [];
  let versions = Array.isArray(v.versions) ? v.versions.filter(posInt).slice(0, 64) : [];
  if (!versions.length) versions = [v.azhexgate];
  const hello: Hello = { azhexgate: v.azhexgate, versions, role: v.role, features, window };
  if (v.sessionWindow !== undefined) {
    if (!posInt(v.sessionWindow)) return { error: "hello has no valid sessionWindow" };
    hello.sessionWindow = v.sessionWindow;
  }
  return hello;
}

function posInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0;
}

/** The highest version both lists hold, or null (docs/protocol.md, "Compatibility rule"). */
export function pickVersion(ours: readonly number[], theirs: readonly number[]): number | null {
  let best: number | null = null;
  for (const v of theirs) if (ours.includes(v) && (best === null || v > best)) best = v;
  return best;
}

/** The sentence a side with no common version closes the session with. */
export function versionMismatch(ours: readonly number[], role: string, peer: Hello): string {
  const older = Math.max(...peer.versions) < Math.max(...ours) ? `the ${peer.role}` : `this ${role}`;
  return `tunnel protocol mismatch: this ${role} speaks versions ${ours.join(", ")}, the ${peer.role} speaks ${peer.versions.join(", ")}; upgrade azhexgate on ${older}`;
}

export function parseRequestHead(v: unknown): RequestHead | { error: string } {
  if (!isObj(v)) return { error: "request head is not an object" };
  if (v.kind !== "http" && v.kind !== "ws") return { error: "request head has no valid kind" };
  if (typeof v.method !== "string" || !TOKEN.test(v.method) || v.method.length > 32) return { error: "invalid method" };
  if (typeof v.target !== "string" || !v.target.startsWith("/") || /[\s\0]/.test(v.target)) return { error: "invalid target" };
  const headers = headerList(v.headers);
  if (!headers) return { error: "invalid headers" };
  const head: RequestHead = { kind: v.kind, method: v.method, target: v.target, headers };
  if (isObj(v.remote) && typeof v.remote.address === "string") head.remote = { address: v.remote.address, port: Number(v.remote.port) || 0 };
  if (Array.isArray(v.protocols)) {
    const p = v.protocols.filter((x): x is string => typeof x === "string" && TOKEN.test(x));
    if (p.length) head.protocols = p;
  }
  return head;
}

export function parseResponseHead(v: unknown): ResponseHead | { error: string } {
  if (!isObj(v)) return { error: "response head is not an object" };
  if (typeof v.status !== "number" || !Number.isInteger(v.status) || v.status < 100 || v.status > 599) return { error: "invalid status" };
  const headers = headerList(v.headers);
  if (!headers) return { error: "invalid headers" };
  const head: ResponseHead = { status: v.status, headers };
  if (typeof v.protocol === "string" && TOKEN.test(v.protocol)) head.protocol = v.protocol;
  return head;
}

/** A v1 JSON head, or null when over the v1 head limit. */
export function jsonHead(head: RequestHead | ResponseHead): Uint8Array | null {
  const p = jsonPayload(head);
  return p.length > MAX_HEAD_PAYLOAD ? null : p;
}

/** Parses a v1 JSON head; over the v1 limit is …_HEAD_TOO_LARGE (that stream only). */
export function parseJsonHead<T>(p: Uint8Array, parse: (v: unknown) => T | { error: string }): T | { error: string; tooLarge?: true } {
  if (p.length > MAX_HEAD_PAYLOAD) return { error: `head of ${p.length} bytes is over the ${MAX_HEAD_PAYLOAD}-byte limit`, tooLarge: true };
  return parse(parseJsonPayload(p));
}

/**
 * Tunnel protocol v1 heads: the session handshake (a text message), the request head carried by
 * OPEN and the response head carried by RESPONSE. Pure validation: hostile input from the other
 * end of the tunnel becomes an `{ error }`, never a throw and never a value of the wrong shape.
 */
import { PROTOCOL_VERSION } from "./frame.ts";

/** Header lists keep order and repeats (several Set-Cookie stay several). */
export type HeaderList = Array<[name: string, value: string]>;

export interface Hello {
  /** Protocol version spoken. */
  azhexgate: number;
  role: "gateway" | "agent";
  /** Optional features, e.g. "ws". Unknown ones are ignored. */
  features: string[];
  /** Initial per-stream window the sender of this hello grants (bytes). */
  window: number;
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
  if (!isObj(v) || typeof v.azhexgate !== "number") return { error: "not an azhexgate hello" };
  if (v.azhexgate !== PROTOCOL_VERSION) return { error: `unsupported protocol version ${String(v.azhexgate)} (this side speaks ${PROTOCOL_VERSION})` };
  if (v.role !== "gateway" && v.role !== "agent") return { error: "hello has no valid role" };
  const window = typeof v.window === "number" && Number.isInteger(v.window) && v.window > 0 ? v.window : 0;
  if (!window) return { error: "hello has no valid window" };
  const features = Array.isArray(v.features) ? v.features.filter((f): f is string => typeof f === "string") : [];
  return { azhexgate: v.azhexgate, role: v.role, features, window };
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

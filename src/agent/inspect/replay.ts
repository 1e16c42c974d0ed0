/**
 * Replays a captured request straight to the local app (not through the tunnel), as captured or
 * with edits (method, path, headers, body), and returns what the app answered. A body that was
 * cut at the capture limit cannot be replayed as is: the caller must send one.
 */
import type { HeaderList } from "../../tunnel/head.ts";
import { HOP_BY_HOP } from "../../tunnel/http.ts";
import { BodyTap, bodyView, NO_BODY, type BodyView, type Entry } from "./store.ts";

export interface ReplayEdits {
  method?: string;
  path?: string;
  headers?: HeaderList;
  /** A new body as text … */
  body?: string;
  /** … or as base64 (binary). */
  body_base64?: string;
}

export interface ReplayResult {
  status: number;
  headers: HeaderList;
  body: BodyView;
  ms: number;
}

export class ReplayError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Checks the edits' shapes; throws a ReplayError (400) naming the field. */
export function parseEdits(v: unknown): ReplayEdits {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new ReplayError(400, "invalid_body", "The replay body must be a JSON object: { method?, path?, headers?, body? | body_base64? }.");
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!["method", "path", "headers", "body", "body_base64"].includes(k)) throw new ReplayError(400, "invalid_field", `Unknown field "${k}"; allowed: method, path, headers, body, body_base64.`);
  if (o.method !== undefined && (typeof o.method !== "string" || !TOKEN.test(o.method))) throw new ReplayError(400, "invalid_method", "method must be an HTTP method such as GET or POST.");
  if (o.path !== undefined && (typeof o.path !== "string" || !o.path.startsWith("/") || /[\s]/.test(o.path))) throw new ReplayError(400, "invalid_path", 'path must start with "/" and contain no spaces.');
  if (o.headers !== undefined) {
    const ok = Array.isArray(o.headers) && o.headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === "string" && TOKEN.test(h[0]) && typeof h[1] === "string" && !/[\r\n\0]/.test(h[1]));
    if (!ok) throw new ReplayError(400, "invalid_headers", 'headers must be a list of [name, value] pairs, e.g. [["content-type", "application/json"]].');
  }
  if (o.body !== undefined && typeof o.body !== "string") throw new ReplayError(400, "invalid_body", "body must be a string (use body_base64 for binary).");
  if (o.body_base64 !== undefined && typeof o.body_base64 !== "string") throw new ReplayError(400, "invalid_body", "body_base64 must be a base64 string.");
  return o as ReplayEdits;
}

/** A replay as an entry of the list: marked as such, pointing at the original (`replayOf`). */
export class ReplayEntry implements Entry {
  id = 0;
  readonly kind = "http" as const;
  readonly time = Date.now();
  readonly t0 = performance.now();
  readonly client = "replay";
  status?: number;
  resHeaders?: HeaderList;
  resBody: BodyTap = NO_BODY;
  ttfbMs?: number;
  ms?: number;
  error?: string;
  done = false;
  constructor(
    readonly replayOf: number,
    readonly method: string,
    readonly target: string,
    readonly origin: string,
    readonly reqHeaders: HeaderList,
    readonly reqBody: BodyTap,
  ) {}
}

/**
 * Replays `e` (with `edits`) and records the replay in the list through `record` (it gets an id
 * there, so the answer can name it). A failed replay is recorded too, with its error.
 */
export async function replay(e: Entry, edits: ReplayEdits, bodyLimit: number, record?: (r: ReplayEntry) => void, timeoutMs = 30_000): Promise<ReplayResult> {
  if (e.kind !== "http") throw new ReplayError(409, "not_replayable", "WebSocket sessions cannot be replayed.");
  const method = (edits.method ?? e.method).toUpperCase();
  let body: Uint8Array | undefined;
  if (edits.body !== undefined) body = Buffer.from(edits.body, "utf8");
  else if (edits.body_base64 !== undefined) body = Buffer.from(edits.body_base64, "base64");
  else if (e.reqBody.size > 0) {
    if (e.reqBody.truncated) throw new ReplayError(409, "body_truncated", `Only the first ${e.reqBody.captured} of ${e.reqBody.size} body bytes were captured; replay with an edited body instead.`);
    body = e.reqBody.bytes();
  }
  const headers = new Headers();
  for (const [n, v] of edits.headers ?? e.reqHeaders) {
    const name = n.toLowerCase();
    if (HOP_BY_HOP.has(name) || name === "content-length" || name === "transfer-encoding") continue;
    headers.append(name, v);
  }
  const sentHeaders: HeaderList = [];
  headers.forEach((v, n) => sentHeaders.push([n, v]));
  const sentBody = new BodyTap(bodyLimit);
  if (body && method !== "GET" && method !== "HEAD") sentBody.push(body);
  const entry = new ReplayEntry(e.id, method, edits.path ?? e.target, e.origin, sentHeaders, sentBody);
  record?.(entry);
  const t0 = performance.now();
  let res: Response;
  try {
    res = await fetch(e.origin + (edits.path ?? e.target), {
      method,
      headers,
      body: method === "GET" || method === "HEAD" || !body ? undefined : (body as Uint8Array<ArrayBuffer>),
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
      tls: { rejectUnauthorized: false },
    });
  } catch (err) {
    entry.status = 502;
    entry.error = "origin_unreachable";
    entry.ms = performance.now() - t0;
    entry.done = true;
    throw new ReplayError(502, "origin_unreachable", `The local app at ${new URL(e.origin).host} could not be reached: ${(err as Error).message}`);
  }
  entry.ttfbMs = performance.now() - t0;
  const tap = new BodyTap(bodyLimit);
  const list: HeaderList = [];
  res.headers.forEach((v, n) => list.push([n, v]));
  entry.status = res.status;
  entry.resHeaders = list;
  entry.resBody = tap;
  try {
    if (res.body) for await (const c of res.body) tap.push(c);
  } finally {
    entry.ms = performance.now() - t0;
    entry.done = true;
  }
  return { status: res.status, headers: list, body: bodyView(tap), ms: Math.round(entry.ms * 10) / 10 };
}

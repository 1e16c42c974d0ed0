/**
 * HTTP semantics at both ends of the tunnel: which headers cross, which are added, how a public
 * Request becomes a request head (gateway) and how a head becomes a request to the origin
 * (agent), and back for responses. Pure functions over web-platform types.
 */
import type { HeaderList, RequestHead, ResponseHead } from "./head.ts";

/** RFC 9110 §7.6.1 connection-specific headers, plus the legacy ones proxies drop. */
export const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/** Framing headers recomputed by whoever writes the next hop. */
const FRAMING = new Set(["content-length", "transfer-encoding"]);

/** WebSocket handshake headers that belong to one hop only. */
const WS_HOP = new Set(["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-accept", "sec-websocket-protocol"]);

/** Headers listed in `Connection: a, b` are hop-by-hop too. */
function connectionTokens(get: (n: string) => string | null): Set<string> {
  const v = get("connection");
  return new Set(v ? v.split(",").map((t) => t.trim().toLowerCase()).filter(Boolean) : []);
}

/**
 * Request methods whose body never crosses: HEAD and TRACE have none, and Bun.serve (1.4.4) drops
 * a GET's body before the gateway sees it (`req.body` is null). Framing headers do not cross for
 * them, nor `Content-Type` when the client declared a body we do not have. OPTIONS bodies (and
 * every other method's) are forwarded.
 */
export function methodHasNoBody(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "TRACE";
}

/** A status whose response never carries a body. */
export function statusHasNoBody(status: number, method?: string): boolean {
  return method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * Forwarding headers a public client may send to pose as someone else: never passed to the app.
 * The gateway sets X-Forwarded-For / -Proto / -Host itself from what it knows (the client address
 * resolved through trusted proxies only). App Service / Front Door add X-Client-IP,
 * X-Azure-ClientIP / SocketIP (https://learn.microsoft.com/en-us/azure/frontdoor/front-door-http-headers-protocol);
 * a client can forge them too, so they go as well.
 */
const FORWARDING = new Set([
  "forwarded",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "x-forwarded-server",
  "x-forwarded-ssl",
  "x-real-ip",
  "x-client-ip",
  "x-client-port",
  "x-azure-clientip",
  "x-azure-socketip",
  "true-client-ip",
]);

export interface IngressInfo {
  /** Public client address (the one X-Forwarded-For value the app gets). */
  remote?: { address: string; port: number };
  /** "https" when the public edge terminated TLS (or a trusted proxy said so). */
  proto: "http" | "https";
  /** The public Host the client used. */
  host: string;
  /** Origin-form target, byte-identical to the request line. */
  target: string;
  kind: "http" | "ws";
}

/** Gateway: a public Request → the request head sent through the tunnel. */
export function requestHeadFrom(req: Request, info: IngressInfo): RequestHead {
  const rh = req.headers;
  const method = req.method;
  const conn = rh.get("connection");
  // most requests name nothing in Connection but keep-alive (hop-by-hop anyway): no set then
  const drop = conn === null || conn === "keep-alive" ? null : connectionTokens(() => conn);
  const headers: HeaderList = [];
  // OPTIONS without a body (CORS preflights) stays bodiless: no framing invented for it.
  const noBody = info.kind === "ws" || methodHasNoBody(method) || (method === "OPTIONS" && req.body === null);
  let declaredBody: boolean | undefined; // asked only when a bodiless request has a Content-Type
  for (const [name, value] of rh) {
    const n = name.toLowerCase();
    if (HOP_BY_HOP.has(n) || (drop !== null && drop.has(n)) || n === "host" || FORWARDING.has(n)) continue;
    if (info.kind === "ws" && WS_HOP.has(n)) continue;
    if (noBody) {
      if (FRAMING.has(n)) continue;
      if (n === "content-type" && (declaredBody ??= rh.has("transfer-encoding") || /^0*[1-9]/.test(rh.get("content-length") ?? ""))) continue;
    }
    headers.push([n, value]);
  }
  // One value: the client as the gateway resolved it (trusted proxies' X-Forwarded-For only).
  const client = info.remote?.address;
  if (client) headers.push(["x-forwarded-for", client]);
  headers.push(["x-forwarded-proto", info.proto]);
  headers.push(["x-forwarded-host", info.host]);
  const head: RequestHead = { kind: info.kind, method, target: info.target, headers };
  if (info.remote) head.remote = info.remote;
  if (info.kind === "ws") {
    const p = rh.get("sec-websocket-protocol");
    if (p) head.protocols = p.split(",").map((s) => s.trim()).filter(Boolean);
  }
  return head;
}

export interface OriginOptions {
  /** `http://localhost:3000` — scheme, host and port of the local app. */
  origin: string;
  /** "rewrite" (default): Host = the origin's host:port; "preserve": keep the public host. */
  hostHeader: "rewrite" | "preserve";
}

const hosts = new Map<string, string>();
/** `host:port` of an origin URL (parsed once per origin: this runs per request). */
function hostOf(origin: string): string {
  let h = hosts.get(origin);
  if (h === undefined) {
    h = new URL(origin).host;
    if (hosts.size < 1000) hosts.set(origin, h);
  }
  return h;
}

/** Agent: the header lines of the request to the origin (Host first, repeats kept in order). */
export function originRequestHeaderList(head: RequestHead, o: OriginOptions): HeaderList {
  let publicHost = "";
  const out: HeaderList = [["host", ""]];
  const list = head.headers;
  for (let i = 0; i < list.length; i++) {
    const pair = list[i]!; // shared, not copied: nobody mutates a head's pairs
    const n = pair[0];
    if (n === "x-forwarded-host") publicHost = pair[1];
    if (HOP_BY_HOP.has(n) || n === "host") continue;
    out.push(pair);
  }
  out[0]![1] = o.hostHeader === "preserve" && publicHost ? publicHost : hostOf(o.origin);
  return out;
}

/** Agent: the headers of the request to the origin, as a Headers object (repeats appended). */
export function originRequestHeaders(head: RequestHead, o: OriginOptions): Headers {
  const h = new Headers();
  for (const [n, v] of originRequestHeaderList(head, o)) h.append(n, v);
  return h;
}

/** Agent: raw origin response header lines → the response head sent back (hop-by-hop dropped). */
export function responseHeadFromList(status: number, list: HeaderList): ResponseHead {
  let connection: string | null = null;
  for (const [n, v] of list) if (n === "connection") connection = connection === null ? v : `${connection}, ${v}`;
  const drop = connection === null ? null : connectionTokens(() => connection);
  const headers: HeaderList = [];
  for (const [n, v] of list) if (!HOP_BY_HOP.has(n) && !drop?.has(n)) headers.push([n, v]);
  return { status, headers };
}

/** Agent: an origin Response → the response head sent back (Set-Cookie values kept apart). */
export function responseHeadFrom(res: Response): ResponseHead {
  const drop = connectionTokens((n) => res.headers.get(n));
  const headers: HeaderList = [];
  for (const [name, value] of res.headers) {
    const n = name.toLowerCase();
    if (n === "set-cookie" || HOP_BY_HOP.has(n) || drop.has(n)) continue;
    headers.push([n, value]);
  }
  for (const c of res.headers.getSetCookie()) headers.push(["set-cookie", c]);
  return { status: res.status, headers };
}

/** Gateway: response head → header pairs for the public Response (framing left to Bun; repeats kept). */
export function publicResponseHeaders(head: ResponseHead): HeaderList {
  let drop = false;
  for (const [n] of head.headers) if (HOP_BY_HOP.has(n)) drop = true;
  return drop ? head.headers.filter(([n]) => !HOP_BY_HOP.has(n)) : head.headers;
}

/**
 * The JSON text messages of a Hybrid Connections control channel (and of HTTP rendezvous
 * sockets): `accept`, `request`, `response`, `renewToken`. Pure encode / decode with validation;
 * a malformed message yields a `{ error }` value, never a throw.
 */

export interface RemoteEndpoint {
  address: string;
  port: number;
}

/** service → listener: a sender wants a WebSocket; connect to `address` to accept. */
export interface AcceptMessage {
  address: string;
  id: string;
  connectHeaders: Record<string, string>;
  remoteEndpoint?: RemoteEndpoint;
}

/**
 * service → listener: an HTTP request. When `method` is absent the request is address-only:
 * open a WebSocket to `address` to receive the full request there.
 */
export interface RequestMessage {
  address: string;
  id: string;
  requestTarget?: string;
  method?: string;
  remoteEndpoint?: RemoteEndpoint;
  requestHeaders?: Record<string, string>;
  /** true ⇒ exactly one binary message with the whole body follows. */
  body?: boolean;
}

/** listener → service: the answer to a request (matched by `requestId`). */
export interface ResponseMessage {
  requestId: string;
  statusCode: number;
  statusDescription?: string;
  responseHeaders?: Record<string, string>;
  body: boolean;
}

export type ControlMessage =
  | { accept: AcceptMessage }
  | { request: RequestMessage }
  | { response: ResponseMessage }
  | { renewToken: { token: string } };

export type Decoded = ControlMessage | { error: string };

/** Largest control message we accept (headers are limited to 32 KB by the service; leave room). */
export const MAX_CONTROL_MESSAGE = 64 * 1024;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === "string";

function stringMap(v: unknown): Record<string, string> | undefined | false {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) return false;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (Array.isArray(val)) out[k] = val.map(String).join(", ");
    else if (isStr(val) || typeof val === "number" || typeof val === "boolean") out[k] = String(val);
    else return false;
  }
  return out;
}

function endpoint(v: unknown): RemoteEndpoint | undefined {
  if (!isObj(v) || !isStr(v.address)) return undefined;
  return { address: v.address, port: Number(v.port) || 0 };
}

/** Decodes one control-channel text message. Unknown actions and bad shapes come back as `{ error }`. */
export function decodeControlMessage(text: string): Decoded {
  if (text.length > MAX_CONTROL_MESSAGE) return { error: "control message too large" };
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return { error: "control message is not valid JSON" };
  }
  if (!isObj(msg)) return { error: "control message is not a JSON object" };
  const keys = Object.keys(msg);
  if (keys.length !== 1) return { error: "control message must have exactly one action" };
  const [action] = keys as [string];
  const body = msg[action];
  if (!isObj(body)) return { error: `"${action}" must be an object` };
  switch (action) {
    case "accept": {
      const headers = stringMap(body.connectHeaders);
      if (!isStr(body.address) || !isStr(body.id) || headers === false) return { error: "accept needs address, id and connectHeaders" };
      const m: AcceptMessage = { address: body.address, id: body.id, connectHeaders: headers ?? {} };
      const ep = endpoint(body.remoteEndpoint);
      if (ep) m.remoteEndpoint = ep;
      return { accept: m };
    }
    case "request": {
      const headers = stringMap(body.requestHeaders);
      if (!isStr(body.address) || headers === false) return { error: "request needs an address" };
      const m: RequestMessage = { address: body.address, id: isStr(body.id) ? body.id : "" };
      if (isStr(body.method)) m.method = body.method;
      if (isStr(body.requestTarget)) m.requestTarget = body.requestTarget;
      if (headers) m.requestHeaders = headers;
      if (typeof body.body === "boolean") m.body = body.body;
      const ep = endpoint(body.remoteEndpoint);
      if (ep) m.remoteEndpoint = ep;
      return { request: m };
    }
    case "response": {
      const headers = stringMap(body.responseHeaders);
      const status = typeof body.statusCode === "string" ? Number(body.statusCode) : body.statusCode;
      if (!isStr(body.requestId) || typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 999 || headers === false)
        return { error: "response needs requestId and a numeric statusCode" };
      const m: ResponseMessage = { requestId: body.requestId, statusCode: status, body: body.body === true };
      if (isStr(body.statusDescription)) m.statusDescription = body.statusDescription;
      if (headers) m.responseHeaders = headers;
      return { response: m };
    }
    case "renewToken":
      if (!isStr(body.token) || !body.token) return { error: "renewToken needs a token" };
      return { renewToken: { token: body.token } };
    default:
      return { error: `unknown action "${action}"` };
  }
}

export function encodeControlMessage(m: ControlMessage): string {
  return JSON.stringify(m);
}

/** True when an address-only request needs a rendezvous (both .NET's and hyco-https's rules). */
export function needsRendezvous(r: RequestMessage): boolean {
  return r.method === undefined || r.body === undefined;
}

/**
 * HTTP request mode (hybrid-connections.md §6). A sender's request becomes a `request` message:
 * ≤ 64 KB (JSON + body) goes on the control channel followed by exactly one binary body message;
 * larger or length-less bodies go as an address-only request, and the full request + body follow
 * on the rendezvous the listener opens. The `response` may come on the control channel or on the
 * request's rendezvous (where a listener sends responses > 64 KB). Deadline → 504 JSON; no
 * listener → 502 (configurable).
 */
import { randomUUID } from "node:crypto";
import { encodeControlMessage, type RequestMessage, type ResponseMessage, decodeControlMessage } from "../hc/messages.ts";
import { stripRelayQuery } from "../hc/address.ts";
import { authorize, describe, failureResponse, httpToken } from "./auth.ts";
import { remoteEndpoint, rendezvousAddress } from "./connect.ts";
import type { Listener } from "./control.ts";
import type { HybridConnection } from "./entities.ts";
import { type Core, HOP_BY_HOP, type Ws, canonicalHeader } from "./types.ts";

/** Largest request (JSON + body) delivered on the control channel. */
export const MAX_INLINE = 64 * 1024;

const NO_BODY_STATUS = new Set([204, 205, 304]);

/** One HTTP request in flight between a sender and a listener. */
export class HttpExchange {
  readonly result = Promise.withResolvers<Response>();
  rendezvous?: Ws;
  private timer?: ReturnType<typeof setTimeout>;
  private body?: ReadableStreamDefaultController<Uint8Array>;
  private state: "waiting" | "body" | "done" = "waiting";
  private discardBody = false;

  constructor(
    readonly mode: HttpMode,
    readonly id: string,
    readonly listener: Listener,
    readonly request: RequestMessage,
    readonly requestBody: Promise<Uint8Array | undefined>,
    readonly addressOnly: boolean,
    readonly head: boolean,
    private readonly host: string,
  ) {}

  get finished(): boolean {
    return this.state === "done";
  }

  arm(ms: number, onTimeout: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(onTimeout, ms);
  }

  /** The listener's `response` head. Returns true when a body message must follow on `ws`. */
  respond(msg: ResponseMessage): boolean {
    if (this.state !== "waiting") return false;
    const valid = msg.statusCode >= 200 && msg.statusCode <= 599;
    const headers = new Headers();
    for (const [k, v] of Object.entries(msg.responseHeaders ?? {})) {
      if (HOP_BY_HOP.has(k.toLowerCase())) continue;
      try {
        headers.append(k, v);
      } catch {
        /* a header Bun refuses is dropped */
      }
    }
    headers.append("Via", `1.1 ${this.host.replace(/:\d+$/, "")}`);
    const withBody = msg.body && valid && !this.head && !NO_BODY_STATUS.has(msg.statusCode);
    const stream = withBody
      ? new ReadableStream<Uint8Array>({
          start: (c) => {
            this.body = c;
          },
          cancel: () => this.finish(),
        })
      : null;
    if (!valid) {
      this.fail(502, `The listener answered with an invalid status code ${msg.statusCode}.`);
    } else {
      this.result.resolve(new Response(stream, { status: msg.statusCode, headers }));
    }
    if (msg.body) {
      this.state = "body";
      this.discardBody = !withBody;
      this.arm(this.mode.core.opts.responseTimeoutMs, () => this.abortBody());
      return true;
    }
    this.finish();
    return false;
  }

  /** The response body message. */
  bodyMessage(data: Uint8Array): void {
    if (this.state !== "body") return;
    if (!this.discardBody && this.body) {
      try {
        if (data.byteLength > 0) this.body.enqueue(data);
        this.body.close();
      } catch {
        /* the sender went away */
      }
    }
    this.finish();
  }

  /** Fails before a response head: the sender gets `status`. */
  fail(status: number, text: string): void {
    if (this.state === "waiting") this.result.resolve(failureResponse(status, describe(text, this.host, this.listener.hcPath)));
    this.abortBody();
  }

  timeout(): void {
    if (this.state !== "waiting") return;
    const message = describe(
      "The request was routed to the listener but the listener did not respond in the required time.",
      this.host,
      this.listener.hcPath,
    );
    this.result.resolve(Response.json({ error: { code: "GatewayTimeout", message } }, { status: 504 }));
    this.finish();
  }

  abortBody(): void {
    if (this.state === "body" && this.body) {
      try {
        this.body.error(new Error("the listener stopped sending the response body"));
      } catch {
        /* already closed */
      }
    }
    this.finish();
  }

  finish(): void {
    if (this.state === "done") return;
    this.state = "done";
    if (this.timer) clearTimeout(this.timer);
    this.result.resolve(new Response(null, { status: 499 })); // no-op unless the sender left before a response
    this.mode.forget(this);
    const rv = this.rendezvous;
    if (rv) setTimeout(() => rv.close(1000, "Response complete"), 0);
  }
}

/** Per-emulator HTTP mode state: exchanges by id and the socket that owes each body. */
export class HttpMode {
  private readonly exchanges = new Map<string, HttpExchange>();
  private readonly pendingBody = new WeakMap<Ws, HttpExchange>();

  constructor(readonly core: Core) {}

  forget(x: HttpExchange): void {
    if (this.exchanges.get(x.id) === x) this.exchanges.delete(x.id);
    this.core.rendezvous.take(x.id);
  }

  /** A `response` on a control channel or rendezvous. */
  response(ws: Ws, msg: ResponseMessage, fallback?: HttpExchange): void {
    const x = this.exchanges.get(msg.requestId) ?? fallback;
    if (!x) return;
    if (x.respond(msg)) this.pendingBody.set(ws, x);
  }

  /** A binary message: the body owed on this socket, if any. */
  binary(ws: Ws, data: Uint8Array): boolean {
    const x = this.pendingBody.get(ws);
    if (!x) return false;
    this.pendingBody.delete(ws);
    x.bodyMessage(data);
    return true;
  }

  listenerClosed(listener: Listener): void {
    for (const x of [...this.exchanges.values()]) {
      if (x.listener === listener && !x.rendezvous) x.fail(502, "The listener disconnected before responding.");
    }
  }

  /** Rendezvous socket events (`ws.data.kind === "http"`). */
  rendezvousOpen(ws: Ws, x: HttpExchange): void {
    x.rendezvous = ws;
    if (!x.addressOnly) return;
    void x.requestBody
      .then((body) => {
        if (x.finished) return;
        ws.send(encodeControlMessage({ request: { ...x.request, body: body !== undefined && body.byteLength > 0 } }));
        if (body !== undefined && body.byteLength > 0) ws.send(body);
      })
      .catch(() => x.fail(400, "The request body could not be read."));
  }

  rendezvousMessage(ws: Ws, x: HttpExchange, msg: string | Uint8Array): void {
    if (typeof msg !== "string") {
      this.binary(ws, msg);
      return;
    }
    const m = decodeControlMessage(msg);
    if ("response" in m) this.response(ws, m.response, x);
    else if ("error" in m) ws.close(1008, `Invalid message: ${m.error}`);
  }

  rendezvousClosed(x: HttpExchange): void {
    x.rendezvous = undefined;
    if (!x.finished) x.fail(502, "The listener closed the rendezvous before responding.");
  }

  stop(): void {
    for (const x of [...this.exchanges.values()]) x.fail(503, "The relay is shutting down.");
  }

  /** `{METHOD} /{hcPath}[/suffix][?query]`: an HTTP sender. */
  async handle(req: Request, url: URL, hc: HybridConnection): Promise<Response> {
    const core = this.core;
    const host = req.headers.get("host") ?? "";
    const { token, fromAuthorization } = httpToken(req, url);
    if (hc.requiresClientAuthorization) {
      const v = authorize(core.auth, token, hc.path, hc, "Send", host);
      if (!v.ok) return failureResponse(v.status, v.description);
    }
    if (req.method === "CONNECT") return failureResponse(405, "CONNECT is not supported.");
    const picked = core.listeners.pick(hc.path, req.headers);
    if (!picked.ok) {
      const noListener = picked.description.startsWith("There are no listeners");
      return failureResponse(noListener ? core.opts.noListenerStatus : 404, describe(picked.description, host, hc.path));
    }
    const listener = picked.listener;
    const server = core.server();
    server.timeout(req, 0);

    const id = `${randomUUID()}_G${Math.floor(Math.random() * 1e6)}`;
    const requestHeaders: Record<string, string> = {};
    for (const [name, value] of req.headers) {
      const n = name.toLowerCase();
      if (HOP_BY_HOP.has(n) || n === "servicebusauthorization" || (fromAuthorization && n === "authorization")) continue;
      requestHeaders[canonicalHeader(name)] = value;
    }
    requestHeaders.Via = requestHeaders.Via ? `${requestHeaders.Via}, 1.1 ${host.replace(/:\d+$/, "")}` : `1.1 ${host.replace(/:\d+$/, "")}`;

    const method = req.method.toUpperCase();
    const mayHaveBody = req.body !== null && method !== "GET" && method !== "HEAD";
    const lengthHeader = req.headers.get("content-length");
    const length = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const hasBody = mayHaveBody && length !== 0;
    const requestBody: Promise<Uint8Array | undefined> = hasBody ? req.bytes() : Promise.resolve(undefined);
    requestBody.catch(() => undefined);

    const request: RequestMessage = {
      address: rendezvousAddress(core, host, hc.path, "", "", "request", id),
      id,
      requestTarget: url.pathname + stripRelayQuery(url.search),
      method,
      remoteEndpoint: remoteEndpoint(server.requestIP(req)),
      requestHeaders,
      body: hasBody,
    };
    const json = encodeControlMessage({ request });
    const addressOnly = hasBody && (length === undefined || length + Buffer.byteLength(json) > MAX_INLINE);
    const x = new HttpExchange(this, id, listener, request, requestBody, addressOnly, method === "HEAD", host);
    this.exchanges.set(id, x);
    core.rendezvous.add(
      {
        id,
        kind: "request",
        hcPath: hc.path,
        onExpire: () => undefined,
        onConnect: (lreq) => {
          if (x.finished) return failureResponse(403, "The rendezvous address is not valid or has expired.");
          return server.upgrade(lreq, { data: { kind: "http", exchange: x } }) ? undefined : failureResponse(400, "WebSocket upgrade failed");
        },
      },
      core.opts.responseTimeoutMs,
    );
    x.arm(core.opts.responseTimeoutMs, () => x.timeout());
    req.signal.addEventListener("abort", () => x.abortBody(), { once: true });

    const dispatch = async (): Promise<void> => {
      if (core.faults.delayAcceptMs > 0) await Bun.sleep(core.faults.delayAcceptMs);
      if (x.finished) return;
      const ws = listener.ws;
      if (!ws || listener.closed) return x.fail(core.opts.noListenerStatus, "There are no listeners connected for the endpoint.");
      if (addressOnly) {
        if (ws.send(encodeControlMessage({ request: { address: request.address, id } })) === 0) x.fail(502, "The listener is not reading.");
        return;
      }
      const body = await requestBody;
      if (x.finished) return;
      const sent = ws.send(json);
      if (sent !== 0 && body !== undefined) {
        if (ws.send(body) === 0) x.fail(502, "The listener is not reading.");
      } else if (sent === 0) x.fail(502, "The listener is not reading.");
    };
    dispatch().catch(() => x.fail(400, "The request body could not be read."));
    return x.result.promise;
  }
}

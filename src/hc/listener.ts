/**
 * Hybrid Connections listener: holds the control channel (`sb-hc-action=listen`), surfaces
 * `accept` and `request` messages as events, accepts / rejects rendezvous, answers HTTP-mode
 * requests, renews its token, and keeps the channel alive (see "Keep-alive" below).
 * No reconnect policy here: `close` carries a RelayError whose `retryable` tells a supervisor what to do.
 * Keep-alive: keepalive.ts (what the relay does with pings, and how we survive either answer).
 */
import { Emitter } from "../ws/emitter.ts";
import { type WsConnection } from "../ws/client.ts";
import { connectWebSocket } from "../ws/connect.ts";
import { listenUrl, type RelayEndpoint, rejectUrl, resourceUri } from "./address.ts";
import { closeError, RelayError } from "./errors.ts";
import { type AcceptMessage, decodeControlMessage, encodeControlMessage, needsRendezvous, type RequestMessage } from "./messages.ts";
import { ControlKeepAlive, KeepAliveMemo } from "./keepalive.ts";
import { AUTH_HEADER, tokenExpiry, toRelayError, toTokenProvider } from "./sender.ts";
import type { TokenProvider } from "./tokens.ts";

export interface ListenerOptions {
  endpoint: RelayEndpoint;
  hcPath: string;
  token: TokenProvider | string;
  /** Listener tracking id (`sb-hc-id`), used by senders' Allowed/DisallowedListeners. */
  id?: string;
  /** Send the token as `sb-hc-token` instead of the `ServiceBusAuthorization` header. */
  tokenInQuery?: boolean;
  /** Keep-alive interval on the control channel; default 30 s, at most 60 s (Azure drops silent channels after ~4 min). */
  keepAliveMs?: number;
  /** Once the relay answered a ping: this many intervals in a row with nothing received ⇒ dead (default 3). */
  deadAfterIntervals?: number;
  /** Pings without any pong on the channel before falling back to unsolicited pongs (default 2). */
  pingsBeforePong?: number;
  /** What we learnt about relays that close channels on a ping (default: one memo per process). */
  keepAliveMemo?: KeepAliveMemo;
  /** Renew the token with `renewToken` before it expires (SAS `se` / JWT `exp`); default true for providers. */
  autoRenew?: boolean;
  /** Handshake timeout for the control channel and rendezvous; default 30 s. */
  timeoutMs?: number;
}

/** An HTTP-mode request with its body (if any) and, for rendezvous delivery, the socket to answer on. */
export interface RelayRequest extends RequestMessage {
  bodyBytes: Uint8Array | null;
  /** @internal set when the request arrived over a request-rendezvous socket */
  rendezvous?: WsConnection;
}

export interface RelayResponse {
  statusCode: number;
  statusDescription?: string;
  headers?: Record<string, string>;
  body?: Uint8Array | null;
}

export interface ListenerEvents {
  accept: (msg: AcceptMessage) => void;
  request: (req: RelayRequest) => void;
  /** Once per `open()`: null when we closed it, else why (see `err.retryable`). */
  close: (err: RelayError | null) => void;
  /** Non-fatal trouble: a malformed control message, a failed request rendezvous, a failed renewal. */
  error: (err: RelayError) => void;
  /** The keep-alive switched to unsolicited pongs (`why`: the relay does not answer, or closes on, pings). */
  keepAlive: (mode: "pong", why: string) => void;
}

export { KeepAliveMemo };

const INLINE_LIMIT = 64 * 1024;

export { tokenExpiry };

export class HybridConnectionListener extends Emitter<ListenerEvents> {
  private readonly provider: TokenProvider;
  /** Keep-alive state of the current channel. */
  private readonly alive: ControlKeepAlive;
  private readonly autoRenew: boolean;
  private control: WsConnection | null = null;
  private closingByUs = false;
  private forceRefresh = false;
  private keepAlive: Timer | undefined;
  private renewTimer: Timer | undefined;
  private pendingBody: RequestMessage | null = null;
  private failure: RelayError | null = null;

  constructor(readonly options: ListenerOptions) {
    super();
    this.provider = toTokenProvider(options.token);
    this.alive = new ControlKeepAlive(options.endpoint.host, options, (why) => this.emit("keepAlive", "pong", why));
    this.autoRenew = options.autoRenew ?? typeof options.token !== "string";
  }

  get isOpen(): boolean {
    return this.control?.readyState === "open";
  }

  private get resource(): string {
    return resourceUri(this.options.endpoint, this.options.hcPath);
  }

  private async token(): Promise<string> {
    try {
      const t = await this.provider.getToken(this.resource, { forceRefresh: this.forceRefresh });
      this.forceRefresh = false;
      return t;
    } catch (e) {
      throw new RelayError("unauthorized", `cannot get a token: ${e instanceof Error ? e.message : String(e)}`, true, { cause: e });
    }
  }

  /** Opens the control channel; rejects with a RelayError (401/403/404 not retryable, 5xx / network retryable). */
  async open(): Promise<void> {
    if (this.control) throw new RelayError("protocol", "listener is already open", false);
    const token = await this.token();
    const o = this.options;
    const url = listenUrl(o.endpoint, o.hcPath, { id: o.id, token: o.tokenInQuery ? token : undefined });
    let ws: WsConnection;
    try {
      ws = await connectWebSocket(url, {
        headers: o.tokenInQuery ? {} : { [AUTH_HEADER]: token },
        timeoutMs: o.timeoutMs,
        maxMessageSize: 1024 * 1024,
      });
    } catch (e) {
      const err = toRelayError(e, "listener");
      if (err.code === "unauthorized") this.forceRefresh = true;
      throw err;
    }
    this.control = ws;
    this.closingByUs = false;
    this.failure = null;
    this.alive.reset();
    ws.on("message", (data, binary) => {
      this.alive.rx++;
      if (binary) this.onBinary(data as Uint8Array);
      else this.onText(data as string);
    });
    ws.on("pong", () => this.alive.pong());
    ws.on("ping", () => this.alive.rx++);
    ws.on("close", (code, reason) => this.onClosed(code, reason));
    this.keepAlive = setInterval(() => this.tick(), this.alive.intervalMs);
    this.scheduleRenew(token);
  }

  /** Closes the control channel with 1000; resolves when it is closed. Established rendezvous stay up. */
  close(): Promise<void> {
    const ws = this.control;
    if (!ws || ws.readyState === "closed") return Promise.resolve();
    this.closingByUs = true;
    return new Promise((resolve) => {
      ws.once("close", () => resolve());
      ws.close(1000, "listener closing");
    });
  }

  /** Sends `renewToken` with `token`, or with a fresh one from the provider. */
  async renewToken(token?: string): Promise<void> {
    const t = token ?? (await this.provider.getToken(this.resource, { forceRefresh: true }));
    if (!this.control?.send(encodeControlMessage({ renewToken: { token: t } }))) {
      if (this.control?.readyState !== "open") throw new RelayError("closed", "control channel is not open", true);
    }
    this.scheduleRenew(t);
  }

  /** Accepts a sender: connects to `msg.address` verbatim (no token) with the chosen subprotocol. */
  async accept(msg: AcceptMessage, opts: { protocol?: string; timeoutMs?: number; maxMessageSize?: number; highWaterMark?: number } = {}): Promise<WsConnection> {
    const offered = headerOf(msg.connectHeaders, "sec-websocket-protocol");
    const protocol = opts.protocol ?? offered?.split(",")[0]?.trim();
    try {
      return await connectWebSocket(msg.address, {
        protocols: protocol ? [protocol] : undefined,
        timeoutMs: opts.timeoutMs ?? this.options.timeoutMs,
        maxMessageSize: opts.maxMessageSize,
        highWaterMark: opts.highWaterMark,
      });
    } catch (e) {
      throw toRelayError(e, "rendezvous");
    }
  }

  /** Rejects a sender with `status` and `description`; the relay's 410 Gone is success. */
  async reject(msg: AcceptMessage, status: number, description: string): Promise<void> {
    let ws: WsConnection;
    try {
      ws = await connectWebSocket(rejectUrl(msg.address, status, description), { timeoutMs: this.options.timeoutMs });
    } catch (e) {
      const err = toRelayError(e, "rendezvous");
      if (err.status === 410) return;
      throw err;
    }
    ws.terminate();
    throw new RelayError("protocol", "relay accepted a reject handshake instead of answering 410", false);
  }

  /** Answers an HTTP-mode request: inline on the control channel when small, else over a rendezvous. */
  async respond(req: RelayRequest, res: RelayResponse): Promise<void> {
    const body = res.body ?? null;
    const head = encodeControlMessage({
      response: {
        requestId: req.id,
        statusCode: res.statusCode,
        ...(res.statusDescription !== undefined ? { statusDescription: res.statusDescription } : {}),
        responseHeaders: res.headers ?? {},
        body: body !== null,
      },
    });
    const inline = !req.rendezvous && Buffer.byteLength(head) + (body?.length ?? 0) <= INLINE_LIMIT;
    let ws = inline ? this.control : req.rendezvous;
    if (!ws) {
      try {
        ws = await connectWebSocket(req.address, { timeoutMs: this.options.timeoutMs });
      } catch (e) {
        throw toRelayError(e, "rendezvous");
      }
    }
    if (ws.readyState !== "open") throw new RelayError("closed", "cannot respond: the socket is closed", true);
    ws.send(head);
    if (body !== null) ws.send(body);
    if (ws !== this.control) {
      await ws.drained();
      ws.close(1000);
    }
  }

  /** Keep-alive mode of the current channel: pinging, or unsolicited pongs only. */
  get keepAliveMode(): "ping" | "pong" {
    return this.alive.mode;
  }

  /** One keep-alive interval (keepalive.ts): a ping or a pong, or a dead channel torn down. */
  private tick(): void {
    const ws = this.control;
    if (!ws || ws.readyState !== "open") return;
    const act = this.alive.tick();
    if (act === "ping") ws.ping();
    else if (act === "pong") ws.pong();
    else {
      this.failure = act;
      ws.terminate();
    }
  }

  private scheduleRenew(token: string): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
    if (!this.autoRenew) return;
    const exp = tokenExpiry(token);
    if (exp === undefined) return;
    const left = exp - Date.now();
    // renew with 20% of the lifetime left (at most 5 min early), never more often than every 500 ms
    const due = Math.max(500, left - Math.min(left * 0.2, 5 * 60_000));
    this.renewTimer = setTimeout(() => {
      this.renewToken().catch((e: unknown) => this.emit("error", toRelayError(e, "listener")));
    }, Math.min(due, 2 ** 31 - 1));
  }

  private onClosed(code: number, reason: string): void {
    clearInterval(this.keepAlive);
    clearTimeout(this.renewTimer);
    this.control = null;
    if (!this.closingByUs && !this.failure) this.alive.closedByRelay(code);
    this.pendingBody = null;
    const err = this.failure ?? (this.closingByUs ? null : (closeError(code, reason) ?? new RelayError("closed", "relay closed the control channel normally", true, { closeCode: code })));
    if (err?.code === "token_expired") this.forceRefresh = true;
    this.emit("close", err);
  }

  private onText(text: string): void {
    if (this.pendingBody) {
      this.emit("error", new RelayError("protocol", "request body expected, got a text message", true));
      this.pendingBody = null;
    }
    const m = decodeControlMessage(text);
    if ("error" in m) return void this.emit("error", new RelayError("protocol", `bad control message: ${m.error}`, true));
    if ("accept" in m) {
      if (!this.emit("accept", m.accept)) this.reject(m.accept, 503, "Listener has no accept handler").catch(() => {});
      return;
    }
    if (!("request" in m)) return;
    const r = m.request;
    if (needsRendezvous(r)) return void this.requestRendezvous(r);
    if (r.body) this.pendingBody = r;
    else this.emit("request", { ...r, bodyBytes: null });
  }

  private onBinary(data: Uint8Array): void {
    const r = this.pendingBody;
    if (!r) return; // stray binary (e.g. an empty body after a body-less request): ignore
    this.pendingBody = null;
    this.emit("request", { ...r, bodyBytes: data });
  }

  /** Address-only request: fetch the full request (and body) over a rendezvous socket. */
  private async requestRendezvous(r: RequestMessage): Promise<void> {
    let ws: WsConnection;
    try {
      ws = await connectWebSocket(r.address, { timeoutMs: this.options.timeoutMs });
    } catch (e) {
      return void this.emit("error", toRelayError(e, "rendezvous"));
    }
    let pending: RequestMessage | null = null;
    ws.on("message", (data, binary) => {
      if (binary) {
        if (pending) this.emit("request", { ...pending, bodyBytes: data as Uint8Array, rendezvous: ws });
        pending = null;
        return;
      }
      const m = decodeControlMessage(data as string);
      if (!("request" in m)) return void this.emit("error", new RelayError("protocol", "expected a request on the rendezvous", true));
      if (m.request.body) pending = m.request;
      else this.emit("request", { ...m.request, bodyBytes: null, rendezvous: ws });
    });
  }
}

function headerOf(h: Record<string, string>, name: string): string | undefined {
  for (const [k, v] of Object.entries(h)) if (k.toLowerCase() === name) return v;
  return undefined;
}

/** Creates a listener and opens it. */
export async function createListener(options: ListenerOptions): Promise<HybridConnectionListener> {
  const l = new HybridConnectionListener(options);
  await l.open();
  return l;
}

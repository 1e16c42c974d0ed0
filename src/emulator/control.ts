/**
 * Listener control channels (hybrid-connections.md §3): open with a Listen token, at most
 * `maxListeners` per hybrid connection, random choice for each sender (honouring
 * Microsoft-Relay-AllowedListeners / DisallowedListeners), `renewToken`, close 1008 at token
 * expiry, 1001 when the entity is deleted, optional idle drop. Keep-alive: Bun answers pings and
 * ignores unsolicited pongs; both count as activity. Liveness faults (liveness-faults.ts): pings
 * unanswered (reading paused), close on ping, the daily 1011 restart.
 */
import { randomUUID } from "node:crypto";
import { MAX_CONTROL_MESSAGE, type ResponseMessage, decodeControlMessage } from "../hc/messages.ts";
import { type AuthContext, authFaults, authorize, describe, failureResponse, notFound, wsToken } from "./auth.ts";
import type { EntityStore, HybridConnection } from "./entities.ts";
import { type CloseHow, LivenessFaultState, nameRenewalFailed } from "./liveness-faults.ts";
import type { ResolvedOptions, SocketData, Ws } from "./types.ts";
import type { Server } from "bun";

/** Largest body a listener may send on its control channel (bigger ones use a rendezvous). */
export const MAX_CONTROL_BODY = 64 * 1024;

export interface Listener {
  /** The listener's tracking id (`sb-hc-id`, else generated): what Allowed/DisallowedListeners name. */
  readonly id: string;
  /** Lower-cased entity path: the registry key. */
  readonly hcKey: string;
  readonly hcPath: string;
  /** Host the listener used (for renewToken host checks and rendezvous addresses). */
  readonly host: string;
  ws?: Ws;
  expiresAt?: number;
  expiryTimer?: ReturnType<typeof setTimeout>;
  lastActivity: number;
  closed: boolean;
  /** Reading paused by the pings-unanswered fault. */
  paused?: boolean;
}

export interface ControlHooks {
  /** A `response` arrived on a control channel. */
  response(ws: Ws, msg: ResponseMessage): void;
  /** A binary message arrived; returns false when no body was pending on this socket. */
  binary(ws: Ws, data: Uint8Array): boolean;
  /** A control channel closed (pending HTTP exchanges on it fail). */
  closed(listener: Listener): void;
}

export type Pick = { ok: true; listener: Listener } | { ok: false; status: 404; description: string };

const MAX_TIMER = 2 ** 31 - 1;

function idList(header: string | null): string[] | undefined {
  if (header === null) return undefined;
  return header
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

export class ListenerRegistry {
  private readonly byHc = new Map<string, Set<Listener>>();
  private idleTimer?: ReturnType<typeof setInterval>;

  constructor(
    private readonly opts: ResolvedOptions,
    private readonly entities: EntityStore,
    private readonly auth: AuthContext,
    private readonly hooks: ControlHooks,
    private readonly liveness: LivenessFaultState = new LivenessFaultState(),
  ) {
    entities.onDelete((hc) => this.closeAll(hc.path, 1001, "Hybrid connection deleted"));
    const idle = opts.idleDropMs;
    if (idle && idle > 0) {
      this.idleTimer = setInterval(() => this.dropIdle(idle), Math.max(50, Math.min(1000, idle / 4)));
      this.idleTimer.unref?.();
    }
  }

  count(hcPath: string): number {
    return this.byHc.get(hcPath.toLowerCase())?.size ?? 0;
  }

  /** Every registered entity path with its listener count (for /$emulator/status). */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const hc of this.entities.list()) out[hc.path] = this.count(hc.path);
    return out;
  }

  /** `GET /$hc/{path}?sb-hc-action=listen`: authorize, maybe auto-create, enforce the limit, upgrade. */
  handleListen(req: Request, url: URL, server: Server<SocketData>, entityPath: string, found: HybridConnection | undefined): Response | undefined {
    const host = req.headers.get("host") ?? "";
    const token = wsToken(req, url);
    let hc = found;
    if (!hc) {
      if (!this.opts.autoCreate) return failureResponse(404, notFound(host, entityPath).description);
      const v = authorize(this.auth, token, entityPath, undefined, "Listen", host);
      if (!v.ok) return failureResponse(v.status, v.description);
      if (v.scopePath !== "") return failureResponse(404, notFound(host, entityPath).description);
      try {
        hc = this.entities.upsert({ path: entityPath });
      } catch {
        return failureResponse(404, notFound(host, entityPath).description);
      }
    }
    const v = authorize(this.auth, token, hc.path, hc, "Listen", host);
    if (!v.ok) return failureResponse(v.status, v.description);
    const key = hc.path.toLowerCase();
    const set = this.byHc.get(key) ?? new Set<Listener>();
    if (set.size >= this.opts.maxListeners) {
      return failureResponse(
        authFaults(this.entities).listenerQuotaStatus, // issue 10: 403 (Service Bus convention) by default, 429 selectable
        describe(`QuotaExceeded: The maximum number of listeners (${this.opts.maxListeners}) for this hybrid connection has been reached.`, host, hc.path),
      );
    }
    const listener: Listener = {
      id: url.searchParams.get("sb-hc-id") || randomUUID(),
      hcKey: key,
      hcPath: hc.path,
      host,
      expiresAt: v.expiresAt,
      lastActivity: Date.now(),
      closed: false,
    };
    set.add(listener);
    this.byHc.set(key, set);
    if (!server.upgrade(req, { data: { kind: "control", listener } })) {
      set.delete(listener);
      return failureResponse(400, "WebSocket upgrade failed");
    }
    return undefined;
  }

  open(ws: Ws, listener: Listener): void {
    if (listener.closed) return;
    listener.ws = ws;
    listener.lastActivity = Date.now();
    this.armExpiry(listener);
    if (this.liveness.unanswered.get(listener.hcPath)) this.pause(listener, true);
  }

  activity(listener: Listener): void {
    listener.lastActivity = Date.now();
  }

  /** A ping arrived (Bun has already answered it): the close-on-ping fault acts here. */
  pinged(listener: Listener): void {
    listener.lastActivity = Date.now();
    const how = this.liveness.closeOnPing.get(listener.hcPath);
    if (how === undefined) return;
    if (how === "abrupt") listener.ws?.terminate();
    else this.close(listener, how, `Keep-alive ping refused (injected fault). TrackingId:${randomUUID()}`);
  }

  /**
   * Pings-unanswered fault. Bun's server answers every ping itself before any handler runs
   * ("The server always replies to client pings with a pong", bun-types WebSocketHandler.sendPings),
   * so the only way not to answer is not to read: matching channels stop being read (TCP
   * backpressure) until the fault is switched off. Accepts still flow to the listener.
   */
  pingsUnanswered(hcPath: string | undefined, on: boolean): number {
    this.liveness.unanswered.set(hcPath, on ? true : false);
    let n = 0;
    for (const l of this.matching()) {
      const want = !!this.liveness.unanswered.get(l.hcPath);
      if (want !== !!l.paused) {
        this.pause(l, want);
        n++;
      }
    }
    return n;
  }

  /** Close-on-ping fault for `hcPath` (or all): `how` = close code or "abrupt"; false = off. */
  closeOnPing(hcPath: string | undefined, how: CloseHow | false): void {
    this.liveness.closeOnPing.set(hcPath, how);
  }

  /** The daily restart: every matching control channel closes with 1011 "NameRenewalFailed". */
  restart(hcPath?: string): number {
    const victims = this.matching(hcPath);
    for (const l of victims) this.close(l, 1011, nameRenewalFailed());
    return victims.length;
  }

  /** Resumes every paused channel (fault reset). */
  resumeAll(): void {
    for (const l of this.matching()) if (l.paused) this.pause(l, false);
  }

  private pause(l: Listener, on: boolean): void {
    l.paused = on;
    l.lastActivity = Date.now();
    if (on) l.ws?.pause();
    else l.ws?.resume();
  }

  message(ws: Ws, listener: Listener, msg: string | Uint8Array): void {
    listener.lastActivity = Date.now();
    if (typeof msg !== "string") {
      if (msg.byteLength > MAX_CONTROL_BODY) return this.close(listener, 1009, "Binary message exceeds the 64 KB control channel limit");
      if (this.hooks.binary(ws, msg) || msg.byteLength === 0) return; // stray empty body (hyco-https 204/304): ignored
      return this.close(listener, 1003, "Unexpected binary message on the control channel");
    }
    if (Buffer.byteLength(msg) > MAX_CONTROL_MESSAGE) return this.close(listener, 1009, "Control message exceeds the 64 KB limit");
    const m = decodeControlMessage(msg);
    if ("error" in m) return this.close(listener, 1008, `Invalid control message: ${m.error}`);
    if ("renewToken" in m) return this.renew(listener, m.renewToken.token);
    if ("response" in m) return this.hooks.response(ws, m.response);
    this.close(listener, 1008, "Invalid control message: a listener may only send renewToken and response");
  }

  closed(listener: Listener): void {
    if (listener.expiryTimer) clearTimeout(listener.expiryTimer);
    listener.closed = true;
    const set = this.byHc.get(listener.hcKey);
    set?.delete(listener);
    if (set && set.size === 0) this.byHc.delete(listener.hcKey);
    this.hooks.closed(listener);
  }

  /** A random open listener of `hcPath` that passes the sender's Allowed/Disallowed headers. */
  pick(hcPath: string, headers: Headers): Pick {
    const all = [...(this.byHc.get(hcPath.toLowerCase()) ?? [])].filter((l) => l.ws && !l.closed);
    if (all.length === 0) return { ok: false, status: 404, description: "There are no listeners connected for the endpoint." };
    const allowed = idList(headers.get("microsoft-relay-allowedlisteners"));
    const disallowed = idList(headers.get("microsoft-relay-disallowedlisteners"));
    const ok = all.filter((l) => (!allowed || allowed.includes(l.id.toLowerCase())) && !disallowed?.includes(l.id.toLowerCase()));
    const listener = ok[Math.floor(Math.random() * ok.length)];
    if (!listener)
      return { ok: false, status: 404, description: "None of the connected listeners meet the AllowedListeners/DisallowedListeners criteria." };
    return { ok: true, listener };
  }

  private matching(hcPath?: string): Listener[] {
    const out: Listener[] = [];
    for (const [key, set] of this.byHc) if (hcPath === undefined || key === hcPath.toLowerCase()) out.push(...set);
    return out.filter((l) => l.ws && !l.closed);
  }

  /** Drops control channels with a close frame, or `"abrupt"`ly without one. Returns how many. */
  drop(hcPath: string | undefined, how: { code?: number; reason?: string } | "abrupt" = {}): number {
    const victims = this.matching(hcPath);
    for (const l of victims) {
      if (how === "abrupt") l.ws?.terminate();
      else this.close(l, how.code ?? 1011, how.reason ?? "Service error (injected fault)");
    }
    return victims.length;
  }

  /** Closes matching control channels with 1008 as if their tokens had expired. */
  expire(hcPath?: string): number {
    const victims = this.matching(hcPath);
    for (const l of victims) this.close(l, 1008, `ExpiredToken: The token is expired. TrackingId:${randomUUID()}`);
    return victims.length;
  }

  closeAll(hcPath: string, code: number, reason: string): number {
    const victims = this.matching(hcPath);
    for (const l of victims) this.close(l, code, `${reason}. TrackingId:${randomUUID()}`);
    return victims.length;
  }

  stop(): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    for (const set of this.byHc.values()) for (const l of set) if (l.expiryTimer) clearTimeout(l.expiryTimer);
  }

  private close(l: Listener, code: number, reason: string): void {
    if (l.expiryTimer) clearTimeout(l.expiryTimer);
    try {
      l.ws?.close(code, reason);
    } catch {
      l.ws?.terminate();
    }
  }

  private renew(l: Listener, token: string): void {
    const hc = this.entities.get(l.hcPath);
    if (!hc) return this.close(l, 1001, "Hybrid connection deleted");
    const v = authorize(this.auth, token, hc.path, hc, "Listen", l.host);
    if (!v.ok) return this.close(l, 1008, `Token renewal failed: ${v.description.split(" TrackingId:")[0]}`);
    l.expiresAt = v.expiresAt;
    this.armExpiry(l);
  }

  private armExpiry(l: Listener): void {
    if (l.expiryTimer) clearTimeout(l.expiryTimer);
    l.expiryTimer = undefined;
    if (l.expiresAt === undefined) return;
    const due = (l.expiresAt + this.auth.tokenSkewSeconds) * 1000 - this.auth.now();
    if (due <= 0) return this.close(l, 1008, `ExpiredToken: The token is expired. TrackingId:${randomUUID()}`);
    l.expiryTimer = setTimeout(() => this.armExpiry(l), Math.min(due, MAX_TIMER));
  }

  private dropIdle(idleMs: number): void {
    const now = Date.now();
    // a paused channel (pings-unanswered fault) is not read, so its traffic cannot be seen: never idle
    for (const l of this.matching()) if (!l.paused && now - l.lastActivity >= idleMs) l.ws?.terminate();
  }
}

/**
 * Types shared by the emulator's parts: resolved options, the per-socket data Bun carries for
 * each WebSocket, and the core every role module reads.
 */
import type { Server, ServerWebSocket } from "bun";
import type { AuthContext } from "./auth.ts";
import type { ListenerRegistry, Listener } from "./control.ts";
import type { Pair } from "./pair.ts";
import type { EntityStore } from "./entities.ts";
import type { FaultState } from "./faults.ts";
import type { LivenessFaultState } from "./liveness-faults.ts";
import type { HttpExchange } from "./http.ts";
import type { RendezvousTable } from "./rendezvous.ts";

export interface ResolvedOptions {
  readonly tls: boolean;
  readonly publicHost?: string;
  readonly autoCreate: boolean;
  readonly maxListeners: number;
  readonly acceptTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly noListenerStatus: number;
  readonly idleDropMs?: number;
}

/** What Bun carries on each server WebSocket. */
export type SocketData =
  | { kind: "control"; listener: Listener }
  | { kind: "leg"; pair: Pair; side: "sender" | "listener" }
  | { kind: "http"; exchange: HttpExchange };

export type Ws = ServerWebSocket<SocketData>;

export interface Core {
  readonly opts: ResolvedOptions;
  readonly entities: EntityStore;
  readonly auth: AuthContext;
  readonly listeners: ListenerRegistry;
  readonly rendezvous: RendezvousTable;
  readonly faults: FaultState;
  readonly liveness: LivenessFaultState;
  server(): Server<SocketData>;
  /** `ws://host` / `wss://host` for rendezvous addresses, from the Host the client used unless publicHost is set. */
  rendezvousBase(requestHost: string): string;
}

/** Hop-by-hop / connection-level headers never relayed (RFC 7230 §6.1 plus the relay's list). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "content-length",
  "host",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "close",
]);

/** Header name in the Title-Case form Azure uses in JSON maps (`Sec-WebSocket-Key`). */
export function canonicalHeader(name: string): string {
  return name
    .split("-")
    .map((p) => (p.toLowerCase() === "websocket" ? "WebSocket" : p.charAt(0).toUpperCase() + p.slice(1).toLowerCase()))
    .join("-");
}

/** Close codes a server may send on the wire; others become 1011 (1006/1005 mean "no code"). */
export function relayableCloseCode(code: number): number {
  if (code === 1005) return 1000;
  if (code === 1006) return 1001;
  if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code;
  return 1011;
}

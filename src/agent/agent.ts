/**
 * The agent's tunnel: an HC listener whose accepted rendezvous become tunnel sessions, each
 * stream forwarded to the local origin. One agent serves one tunnel (one hybrid connection).
 * Reconnect policy is not here (see supervisor.ts): `onClose` reports why the control channel ended.
 */
import type { RelayEndpoint } from "../hc/address.ts";
import type { RelayError } from "../hc/errors.ts";
import { HybridConnectionListener, type ListenerOptions } from "../hc/listener.ts";
import type { TokenProvider } from "../hc/tokens.ts";
import type { Session } from "../tunnel/session.ts";
import type { ForwardOptions } from "./forward.ts";
import { TunnelSessions } from "./sessions.ts";

export interface AgentOptions extends ForwardOptions {
  endpoint: RelayEndpoint;
  hcPath: string;
  token: TokenProvider | string;
  /** Let the listener renew its own token before expiry (default: true for providers, false for a string). */
  autoRenew?: boolean;
  /** Per-stream window granted to the gateway (default 2 MiB). */
  window?: number;
  onClose?: (err: RelayError | null) => void;
  /** Control-channel keep-alive (src/hc/listener.ts); tests shorten the interval. */
  keepAlive?: Pick<ListenerOptions, "keepAliveMs" | "deadAfterIntervals" | "pingsBeforePong" | "keepAliveMemo">;
  /** Tunnel-session liveness check interval (default 10 s). */
  sessionPingMs?: number;
  /** Tunnel protocol versions spoken (default: all; tests play an older agent with `[1]`). */
  protocolVersions?: readonly number[];
}

export interface AgentHandle {
  readonly listener: HybridConnectionListener;
  /** Open tunnel sessions (one per gateway pool connection). */
  readonly sessions: ReadonlySet<Session>;
  /** Streams in flight over all sessions. */
  readonly inFlight: number;
  /**
   * Graceful stop: GOAWAY on every session, close the control channel (no new rendezvous), let
   * in-flight streams finish for up to `graceMs`, then close. Resolves with the streams cut off.
   * `stop()` during a drain ends it at once.
   */
  drain(graceMs: number): Promise<number>;
  /** Immediate stop: closes the control channel and every session. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Wires a listener's `accept`s into `sessions`. */
export function serveAccepts(listener: HybridConnectionListener, sessions: TunnelSessions): void {
  listener.on("accept", (msg) => void sessions.accept(listener, msg));
}

export async function startAgent(o: AgentOptions): Promise<AgentHandle> {
  const listener = new HybridConnectionListener({ ...o.keepAlive, endpoint: o.endpoint, hcPath: o.hcPath, token: o.token, autoRenew: o.autoRenew });
  const sessions = new TunnelSessions({ ...o, pingMs: o.sessionPingMs });
  serveAccepts(listener, sessions);
  listener.on("close", (err) => o.onClose?.(err));
  listener.on("error", () => {});
  await listener.open();
  const handle: AgentHandle = {
    listener,
    get sessions() {
      return sessions.sessions;
    },
    get inFlight() {
      return sessions.inFlight;
    },
    async drain(graceMs) {
      sessions.goAway();
      await listener.close();
      return sessions.drain(graceMs);
    },
    async stop() {
      sessions.cut();
      await listener.close();
      sessions.closeAll(1001, "agent stopping");
    },
    [Symbol.asyncDispose]: () => handle.stop(),
  };
  return handle;
}

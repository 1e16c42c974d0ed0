/**
 * Keep-alive of a Hybrid Connections control channel (the listener's `sb-hc-action=listen`
 * WebSocket): when to ping, when to fall back to unsolicited pongs, when a silent channel is dead,
 * and what we remember per relay host. Pure state: the listener owns the timer and the socket.
 *
 * Azure drops a control channel that stays silent for about 4 min (Azure/azure-relay
 * issue #33); the .NET SDK keeps it alive every 3.5 min (Azure/azure-relay-dotnet
 * src/Microsoft.Azure.Relay/HybridConnectionConstants.cs, KeepAliveInterval). The protocol guide
 * describes a "ping" that tells a dead channel (relay-hybrid-connections-protocol.md, "Ping
 * operation") but not whether the service answers a listener's WebSocket ping; Microsoft's own
 * clients do not wait for one: hyco-https sends an unsolicited pong every keepAliveTimeout
 * (Azure/azure-relay-node hyco-https/lib/HybridConnectionHttpsServer.js, `controlChannel.pong()`,
 * added in PR #34), recent .NET relies on ClientWebSocket's KeepAliveInterval (unsolicited pongs),
 * and one report has the service dropping a channel on a listener's ping (Azure/azure-relay-dotnet
 * issue #103). So, to survive either answer, every `keepAliveMs` (default 30 s):
 *  - any inbound frame (message, ping, pong) counts as life;
 *  - we ping; once the relay has answered a ping on this channel, `deadAfterIntervals` (3)
 *    intervals in a row with nothing at all received tear the channel down (a retryable timeout);
 *  - if no pong comes for `pingsBeforePong` (2) pings, we switch to unsolicited pongs, as
 *    Microsoft's clients do; silence is then no longer a sign of death (nothing would answer);
 *  - if the relay closes the channel right after our ping twice in a row, pings are unsafe on
 *    that relay: later channels to it (`KeepAliveMemo`, per relay host) use pongs from the start.
 */
import type { ListenerOptions } from "./listener.ts";
import { RelayError } from "./errors.ts";

/**
 * Per relay host: how often in a row the relay closed a control channel right after our ping.
 * Two strikes and pings are unsafe there; a channel that outlives a ping clears the count.
 */
export class KeepAliveMemo {
  private readonly strikes = new Map<string, number>();

  pongOnly(host: string): boolean {
    return (this.strikes.get(host) ?? 0) >= 2;
  }

  strike(host: string): void {
    this.strikes.set(host, (this.strikes.get(host) ?? 0) + 1);
  }

  survived(host: string): void {
    if (!this.pongOnly(host)) this.strikes.delete(host);
  }
}

const processMemo = new KeepAliveMemo();

/** The keep-alive state of one control channel at a time (`reset()` on each new channel). */
export class ControlKeepAlive {
  readonly intervalMs: number;
  private readonly deadAfter: number;
  private readonly pingsBeforePong: number;
  private readonly memo: KeepAliveMemo;
  mode: "ping" | "pong" = "ping";
  /** Frames received on the channel (any kind counts as life). */
  rx = 0;
  private rxAtTick = 0;
  private silentTicks = 0;
  private pongSeen = false;
  private unanswered = 0;
  private lastPingAt: number | undefined;

  constructor(
    private readonly host: string,
    o: Pick<ListenerOptions, "keepAliveMs" | "deadAfterIntervals" | "pingsBeforePong" | "keepAliveMemo">,
    /** Called when the channel switches to unsolicited pongs, with why. */
    private readonly onPongOnly: (why: string) => void,
  ) {
    this.intervalMs = Math.max(10, Math.min(o.keepAliveMs ?? 30_000, 60_000));
    this.deadAfter = Math.max(2, o.deadAfterIntervals ?? 3);
    this.pingsBeforePong = Math.max(1, o.pingsBeforePong ?? 2);
    this.memo = o.keepAliveMemo ?? processMemo;
  }

  /** A new channel: pongs from the start when this relay closed channels on pings before. */
  reset(): void {
    this.mode = this.memo.pongOnly(this.host) ? "pong" : "ping";
    this.rx = this.rxAtTick = this.silentTicks = this.unanswered = 0;
    this.pongSeen = false;
    this.lastPingAt = undefined;
  }

  pong(): void {
    this.rx++;
    this.pongSeen = true;
    this.unanswered = 0;
  }

  /** One interval: what to send, or the error of a channel found dead. */
  tick(now = Date.now()): "ping" | "pong" | RelayError {
    if (this.rx !== this.rxAtTick) {
      this.rxAtTick = this.rx;
      this.silentTicks = 0;
    } else this.silentTicks++;
    if (this.mode === "ping") {
      if (this.lastPingAt !== undefined) this.memo.survived(this.host);
      if (this.pongSeen && this.silentTicks >= this.deadAfter) {
        return new RelayError("timeout", `nothing received on the control channel for ${this.silentTicks} keep-alive intervals (${this.intervalMs} ms each)`, true);
      }
      if (!this.pongSeen && this.unanswered >= this.pingsBeforePong) {
        this.mode = "pong";
        this.onPongOnly(`no answer to ${this.unanswered} pings`);
      }
    }
    if (this.mode === "pong") return "pong";
    this.unanswered++;
    this.lastPingAt = now;
    return "ping";
  }

  /**
   * The relay closed the channel (not us, not a keep-alive failure): right after our ping, and not
   * for an expired token (1008) or a deleted entity (1001), it counts as a strike against pings.
   */
  closedByRelay(code: number, now = Date.now()): void {
    const window = Math.min(2000, this.intervalMs * 0.9);
    if (this.mode === "ping" && this.lastPingAt !== undefined && now - this.lastPingAt <= window && code !== 1008 && code !== 1001) {
      this.memo.strike(this.host);
      if (this.memo.pongOnly(this.host)) this.onPongOnly("the relay closed the control channel right after a ping, twice in a row");
    }
  }
}

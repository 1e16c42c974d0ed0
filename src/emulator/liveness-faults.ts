/**
 * Liveness faults (issue 10): what the real relay may do to long-lived connections, played on
 * demand. Control channels: pings left unanswered, pings answered only by closing the channel,
 * the daily 1011 "NameRenewalFailed" restart. Relayed WebSocket connections: a silent blackhole
 * of one connection (no close, no data, either way), and sender-token expiry closing established
 * connections with 1008. The switches live here; control.ts and connect.ts consult them.
 *
 * Sources: relay-exceptions.md ("ConnectionLostException - NameRenewalFailed": the service
 * restarts listener connections every 24 hours); relay-hybrid-connections-protocol.md (1008 "the
 * security token has expired" on listener and rendezvous sockets; 1011 "something went wrong");
 * Azure/azure-relay-dotnet issue #103 (a listener's ping got its channel dropped).
 */
import { randomUUID } from "node:crypto";
import type { Pair } from "./pair.ts";

/** A value switched on for one hybrid connection (lower-cased path) or for all (`*`); off without a path = off everywhere. */
class PathSwitch<T> {
  private readonly on = new Map<string, T>();

  set(hcPath: string | undefined, value: T | false): void {
    if (hcPath === undefined && value === false) return this.on.clear();
    const key = hcPath === undefined ? "*" : hcPath.replace(/^\/+|\/+$/g, "").toLowerCase();
    if (value === false) this.on.delete(key);
    else this.on.set(key, value);
  }

  get(hcPath: string): T | undefined {
    return this.on.get(hcPath.toLowerCase()) ?? this.on.get("*");
  }

  get size(): number {
    return this.on.size;
  }

  clear(): void {
    this.on.clear();
  }
}

/** How a channel is closed when it pings: a close code, or `abrupt` (TCP dropped, no close frame). */
export type CloseHow = number | "abrupt";

interface Tracked {
  hcKey: string;
  /** Sender token expiry, unix seconds (undefined: no token / never). */
  expiresAt?: number;
  timer?: ReturnType<typeof setTimeout>;
}

const MAX_TIMER = 2 ** 31 - 1;

export class LivenessFaultState {
  /** Control channels whose pings go unanswered (the emulator stops reading them; see pingsUnanswered). */
  readonly unanswered = new PathSwitch<true>();
  /** Control channels closed when they ping. */
  readonly closeOnPing = new PathSwitch<CloseHow>();
  /** Close established relayed connections with 1008 when their sender's token expires. */
  private senderExpiry = false;
  private readonly pairs = new Map<Pair, Tracked>();

  /** `tokenSkewSeconds`: grace after expiry, as for listener tokens. */
  constructor(
    private readonly now: () => number = Date.now,
    private readonly tokenSkewSeconds = 0,
  ) {}

  /** connect.ts: a sender's connection was established (its token expiry, unix seconds, if any). */
  track(pair: Pair, hcPath: string, expiresAt: number | undefined): void {
    const t: Tracked = { hcKey: hcPath.toLowerCase(), expiresAt };
    this.pairs.set(pair, t);
    if (this.senderExpiry) this.arm(pair, t);
  }

  /** connect.ts: both legs of the connection are gone. */
  untrack(pair: Pair): void {
    const t = this.pairs.get(pair);
    if (t?.timer) clearTimeout(t.timer);
    this.pairs.delete(pair);
  }

  /** Stops forwarding on one established connection of `hcPath` (the oldest); returns how many (0 or 1). */
  blackholeOne(hcPath?: string): number {
    const key = hcPath?.toLowerCase();
    for (const [pair, t] of this.pairs) {
      if ((key === undefined || t.hcKey === key) && !pair.blackholed && pair.established) {
        pair.blackhole();
        return 1;
      }
    }
    return 0;
  }

  setSenderTokenExpiry(on: boolean): void {
    this.senderExpiry = on;
    for (const [pair, t] of this.pairs) {
      if (t.timer) clearTimeout(t.timer);
      t.timer = undefined;
      if (on) this.arm(pair, t);
    }
  }

  private arm(pair: Pair, t: Tracked): void {
    if (t.expiresAt === undefined) return;
    const due = (t.expiresAt + this.tokenSkewSeconds) * 1000 - this.now();
    const expire = () => pair.closeBoth(1008, `ExpiredToken: The token is expired. TrackingId:${randomUUID()}`);
    if (due <= 0) return expire();
    t.timer = setTimeout(() => {
      if ((t.expiresAt! + this.tokenSkewSeconds) * 1000 <= this.now()) expire();
      else this.arm(pair, t);
    }, Math.min(due, MAX_TIMER));
  }

  reset(): void {
    this.unanswered.clear();
    this.closeOnPing.clear();
    this.setSenderTokenExpiry(false);
    // a blackholed connection stays dead, as one dropped by a middlebox does
  }
}

/** The close reason of the daily restart (.NET surfaces it as `ConnectionLostException: InternalServerError: NameRenewalFailed`). */
export function nameRenewalFailed(): string {
  return `NameRenewalFailed: listener connections are restarted every 24 hours. TrackingId:${randomUUID()}`;
}

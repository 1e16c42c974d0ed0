/**
 * A stream's contract with its session, and how a stream fails: the narrow host interface a
 * TunnelStream runs against (a Session, or a recording host in tests), the reset error (a code and
 * a reason), the session-lost kind, and the largest WebSocket message a stream reassembles.
 */
import { ResetCode } from "./frame.ts";
import type { ResponseHead } from "./head.ts";
import type { GrowthHost } from "./window.ts";

/** What a stream needs from its session (kept narrow so streams are testable alone). */
export interface StreamHost extends GrowthHost {
  enqueue(type: number, stream: number, payload: Uint8Array): void;
  /** Null when the transport takes more now, else a promise that resolves when it drains. */
  writable(): Promise<void> | null;
  release(id: number): void;
  readonly window: number;
  /** Session-level credit the peer granted that is left (Infinity when the peer speaks v1). */
  readonly sessionCredit: number;
  /** Charges `n` bytes to the session credit. */
  spendSession(n: number): void;
  /** Resolves when session credit arrives (or the session closes). */
  sessionCreditWaiter(): Promise<void>;
  /** `n` inbound bytes were consumed or dropped: session credit goes back to the peer. */
  returnSession(n: number): void;
  /** Largest window a stream may grow to (= `window` with a v1 peer: no growth). */
  readonly maxWindow: number;
  /** The response head as a RESPONSE payload, or null when over the head limit. */
  encodeResponse(head: ResponseHead): Uint8Array | null;
}

export class StreamResetError extends Error {
  override readonly name = "StreamResetError";
  constructor(readonly code: number, readonly reason: string) {
    super(reason || `stream reset (code ${code})`);
  }
}

/** Every stream of a session that closed fails with this (a kind, so no one matches the reason text). */
export class SessionLostError extends StreamResetError {
  constructor(reason: string) {
    super(ResetCode.INTERNAL, `tunnel session lost: ${reason}`);
  }
}

/** Largest WebSocket message a stream reassembles (Bun's server default is 16 MiB; we allow more). */
export const MAX_WS_MESSAGE = 64 << 20;

/**
 * The two legs of one relayed WebSocket connection (hybrid-connections.md §5): whole messages
 * forwarded leg to leg, text / binary kept, close codes carried over, backpressure by pausing the
 * reading leg while the other is over Bun's backpressure limit (resumed on its drain).
 *
 * Cost (issue 13): both legs end here, so Bun's WebSocket server parses and unmasks each message
 * and frames it again for the other leg; that native work and the kernel's copies are most of the
 * emulator's CPU per MiB (bench/results/README.md, "Relay emulator re-framing"). What the
 * emulator itself adds is kept small: the first message for a leg in an event-loop turn goes out
 * at once (no added latency); further small ones for that leg in the same turn (a burst read in
 * one go) wait for the end of the turn and are written together, corked, in one socket write
 * instead of one each. A message of COALESCE_BELOW bytes or more always goes out at once, together
 * with any smaller ones waiting ahead of it (order is kept per direction). A close is sent after
 * everything read before it.
 */
import { type Ws, relayableCloseCode } from "./types.ts";

export type Side = "sender" | "listener";
type Msg = string | Uint8Array;

/** Messages this small wait for the end of the event-loop turn (Bun's cork buffer is 16 KiB). */
export const COALESCE_BELOW = 16 * 1024;

/** Event-loop turns, counted while any pair relays: one setImmediate per turn for all pairs. */
let turn = 0;
let ticking = false;
const toFlush = new Set<Pair>();

function endOfTurn(): void {
  ticking = false;
  turn++;
  const pairs = [...toFlush];
  toFlush.clear();
  for (const p of pairs) p.flushAll();
}

function noteTurn(): void {
  if (ticking) return;
  ticking = true;
  setImmediate(endOfTurn);
}

function other(side: Side): Side {
  return side === "sender" ? "listener" : "sender";
}

export class Pair {
  private readonly ws: Partial<Record<Side, Ws>> = {};
  /** Messages for a leg that has not opened yet (its reader is paused meanwhile). */
  private readonly queue: Record<Side, Msg[]> = { sender: [], listener: [] };
  /** Messages read this turn for a leg, written together at the end of the turn. */
  private readonly outbox: Record<Side, Msg[]> = { sender: [], listener: [] };
  /** The turn in which a message last went out to each leg. */
  private readonly sentIn: Record<Side, number> = { sender: -1, listener: -1 };
  private readonly closedWith: Partial<Record<Side, [number, string]>> = {};
  private readonly done: Partial<Record<Side, boolean>> = {};
  private readonly gone: Partial<Record<Side, boolean>> = {};
  /** Fault: nothing is forwarded either way any more, not even a close (liveness-faults.ts). */
  blackholed = false;

  /** `onGone`: both legs have closed (the fault registry forgets the connection). */
  constructor(private readonly onGone?: () => void) {}

  /** Both legs are open. */
  get established(): boolean {
    return !!this.ws.sender && !!this.ws.listener && !this.done.sender && !this.done.listener;
  }

  /** Messages read but not yet written to `side` (tests: bounded by one event-loop turn). */
  pending(side: Side): number {
    return this.outbox[side].length + this.queue[side].length;
  }

  /** Fault: stop forwarding messages and closes in both directions, silently. */
  blackhole(): void {
    this.blackholed = true;
    this.outbox.sender.length = 0;
    this.outbox.listener.length = 0;
  }

  /** Closes both legs with `code` (e.g. 1008 when the sender's token expired). */
  closeBoth(code: number, reason: string): void {
    this.closeLeg("sender", code, reason);
    this.closeLeg("listener", code, reason);
  }

  /** A leg's socket closed (Bun's close handler); `close` decides what to forward. */
  legClosed(side: Side, code: number, reason: string): void {
    this.gone[side] = true;
    this.outbox[side].length = 0;
    if (!this.blackholed) this.close(side, code, reason);
    else this.done[side] = true;
    if (this.gone.sender && this.gone.listener) this.onGone?.();
  }

  open(side: Side, ws: Ws): void {
    this.ws[side] = ws;
    const from = other(side);
    for (const m of this.queue[side].splice(0)) this.deliver(from, side, m);
    this.ws[from]?.resume();
    const pendingClose = this.closedWith[from];
    if (pendingClose) this.closeLeg(side, pendingClose[0], pendingClose[1]);
  }

  message(side: Side, msg: Msg): void {
    const to = other(side);
    if (this.done[to] || this.blackholed) return;
    if (!this.ws[to]) {
      this.queue[to].push(msg);
      this.ws[side]?.pause();
      return;
    }
    this.deliver(side, to, msg);
  }

  drain(side: Side): void {
    if (this.blackholed) return;
    const from = this.ws[other(side)];
    if (from && !this.done[other(side)]) from.resume();
  }

  close(side: Side, code: number, reason: string): void {
    this.done[side] = true;
    this.closedWith[side] = [code, reason];
    const to = other(side);
    if (this.ws[to] && !this.done[to]) this.closeLeg(to, code, reason);
  }

  /** The other leg never came (sender vanished before its upgrade completed). */
  abandon(side: Side, code: number, reason: string): void {
    this.close(other(side), code, reason);
  }

  private deliver(from: Side, to: Side, msg: Msg): void {
    const box = this.outbox[to];
    noteTurn();
    const big = (typeof msg === "string" ? msg.length * 3 : msg.byteLength) >= COALESCE_BELOW;
    if (box.length === 0 && (big || this.sentIn[to] !== turn)) {
      this.sentIn[to] = turn;
      this.write(from, to, msg);
      return;
    }
    box.push(msg);
    if (big) this.flush(to); // never held back: the small ones waiting ahead go with it, corked
    else toFlush.add(this);
  }

  /** End of the turn: write what waits for either leg. */
  flushAll(): void {
    this.flush("listener");
    this.flush("sender");
  }

  /** Writes what waits for `to`, corked: one socket write for the lot (while it fits Bun's cork buffer). */
  private flush(to: Side): void {
    const box = this.outbox[to];
    if (box.length === 0) return;
    const target = this.ws[to];
    if (!target || this.done[to] || this.blackholed) {
      box.length = 0;
      return;
    }
    const from = other(to);
    const msgs = box.splice(0);
    if (msgs.length === 1) this.write(from, to, msgs[0]!);
    else
      target.cork(() => {
        for (const m of msgs) if (!this.write(from, to, m)) break;
      });
  }

  /** Sends one message; false when it was dropped (both legs are then closed). */
  private write(from: Side, to: Side, msg: Msg): boolean {
    const target = this.ws[to]!;
    const r = typeof msg === "string" ? target.sendText(msg) : target.sendBinary(msg);
    if (r === -1) this.ws[from]?.pause();
    else if (r === 0) {
      this.closeLeg(to, 1011, "Message dropped under backpressure");
      this.closeLeg(from, 1011, "Message dropped under backpressure");
      return false;
    }
    return true;
  }

  private closeLeg(side: Side, code: number, reason: string): void {
    if (this.done[side]) return;
    this.flush(side); // what was read before the close goes first
    if (this.done[side]) return; // a dropped message closed it meanwhile
    this.done[side] = true;
    this.outbox[side].length = 0;
    try {
      this.ws[side]?.close(relayableCloseCode(code), reason);
    } catch {
      this.ws[side]?.terminate();
    }
  }
}

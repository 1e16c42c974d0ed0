/**
 * A recording StreamHost for TunnelStream unit tests (issue 18, mutation testing): the frames a
 * stream sends, the credit it spends and returns, as the peer would see them. No session, no I/O.
 */
import { FrameType as T, parseReset, parseVarints, parseWsClose, type Frame } from "../../src/tunnel/frame.ts";
import type { ResponseHead } from "../../src/tunnel/head.ts";
import { TunnelStream, type StreamHost } from "../../src/tunnel/stream.ts";
import { ProcessBudget } from "../../src/tunnel/window.ts";

export class RecordingHost implements StreamHost {
  frames: Frame[] = [];
  released: number[] = [];
  /** Session credit returned to the peer (sum of returnSession calls). */
  returned = 0;
  sessionCredit = Number.POSITIVE_INFINITY;
  spent = 0;
  congested: Promise<void> | null = null;
  rtt = 0;
  maxWindow: number;
  tooLarge = false;
  /** This host's own process budget (not the process-wide one), large unless a test lowers it. */
  budget = new ProcessBudget(1 << 30);
  /** Session window growth the streams asked for (granted) and gave back. */
  grownSession = 0;
  shrunkSession = 0;
  growSession(extra: number): boolean {
    if (!this.budget.takeGrowth(extra)) return false;
    this.grownSession += extra;
    return true;
  }
  shrinkSession(n: number): void {
    this.shrunkSession += n;
    this.budget.giveGrowth(n);
  }
  private sessionWaiters: Array<() => void> = [];
  constructor(readonly window = 1000, maxWindow?: number) {
    this.maxWindow = maxWindow ?? window;
  }
  enqueue(type: number, stream: number, payload: Uint8Array): void {
    this.frames.push({ type: type as Frame["type"], stream, payload: payload.slice() });
  }
  writable(): Promise<void> | null {
    return this.congested;
  }
  release(id: number): void {
    this.released.push(id);
  }
  spendSession(n: number): void {
    this.sessionCredit -= n;
    this.spent += n;
  }
  sessionCreditWaiter(): Promise<void> {
    return new Promise((r) => this.sessionWaiters.push(r));
  }
  grantSession(n: number): void {
    this.sessionCredit += n;
    const w = this.sessionWaiters;
    this.sessionWaiters = [];
    for (const f of w) f();
  }
  returnSession(n: number): void {
    this.returned += n;
  }
  encodeResponse(head: ResponseHead): Uint8Array | null {
    return this.tooLarge ? null : new TextEncoder().encode(JSON.stringify(head));
  }
  /** Frames of one type. */
  of(type: number): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }
  /** The increments of every WINDOW sent so far. */
  windows(): number[] {
    return this.of(T.WINDOW).map((f) => parseVarints(f.payload, 1)![0]!);
  }
  resets(): Array<{ code: number; reason: string }> {
    return this.of(T.RESET).map((f) => parseReset(f.payload)!);
  }
  wsCloses(): Array<{ code: number; reason: string }> {
    return this.of(T.WS_CLOSE).map((f) => parseWsClose(f.payload)!);
  }
  /** WebSocket frames as [flags, length]. */
  wsFrames(): Array<[number, number]> {
    return this.of(T.WS_MESSAGE).map((f) => [f.payload[0]!, f.payload.length - 1]);
  }
}

export function mkStream(opts: { window?: number; peerWindow?: number; maxWindow?: number } = {}) {
  const host = new RecordingHost(opts.window ?? 1000, opts.maxWindow);
  const s = new TunnelStream(host, 7, opts.peerWindow ?? 1000);
  return { host, s };
}

export const bytes = (n: number, fill = 0x61) => new Uint8Array(n).fill(fill);
/** A WS_MESSAGE payload: flags byte then data. */
export const wsPayload = (flags: number, data: Uint8Array) => {
  const p = new Uint8Array(data.length + 1);
  p[0] = flags;
  p.set(data, 1);
  return p;
};
export const turn = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

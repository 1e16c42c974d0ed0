/**
 * The gateway's public access log: one line per public request and per WebSocket session with
 * the tunnel id, method, path (never the query string: it may carry secrets), the status the
 * public client got, duration, bytes in / out and the client's address.
 *
 * Modes (AZHEXGATE_ACCESS_LOG): `all` (default) logs every failure and a sample of successes
 * (AZHEXGATE_ACCESS_LOG_SAMPLE, default 1 = all); `errors` logs only failures (status >= 400,
 * or a client gone before the answer); `off` builds nothing: the server holds no AccessLog at all.
 */
import type { TunnelStream } from "../tunnel/stream.ts";

export type AccessLogMode = "all" | "errors" | "off";

export interface AccessLogLine {
  tunnel: string;
  kind: "http" | "ws";
  method: string;
  path: string;
  status: number;
  ms: number;
  bytes_in: number;
  bytes_out: number;
  client: string;
  /** The gateway's error code (`origin_unreachable`, `client_gone`, …) when the gateway answered. */
  error?: string;
}

export interface AccessLogOptions {
  mode: Exclude<AccessLogMode, "off">;
  /** Fraction of successful requests logged in `all` mode (0..1). */
  sample: number;
  write: (line: AccessLogLine) => void;
  /** For tests: the sampling coin. */
  random?: () => number;
}

/** One request in flight (only ever created when the log is on). */
export interface AccessEntry {
  readonly t0: number;
  tunnel: string;
  readonly method: string;
  readonly target: string;
  readonly client: string;
  kind: "http" | "ws";
  /** The app's status once its answer head arrived (0 before). */
  status: number;
  done: boolean;
  /** Bytes in / out when the stream ended before `answered` (a small answer ends in the same turn as its head). */
  ended?: [number, number];
}

const MAX_PATH = 512;

/** The path of an origin-form target, without its query string, bounded. */
export function logPath(target: string): string {
  const q = target.indexOf("?");
  const p = q < 0 ? target : target.slice(0, q);
  return p.length > MAX_PATH ? `${p.slice(0, MAX_PATH)}...` : p;
}

export class AccessLog {
  /** Entries whose response (or WebSocket session) is still flowing, finished when the stream ends. */
  private readonly flowing = new WeakMap<TunnelStream, AccessEntry>();
  private readonly random: () => number;

  constructor(private readonly o: AccessLogOptions) {
    this.random = o.random ?? Math.random;
  }

  begin(tunnel: string, method: string, target: string, client: string): AccessEntry {
    return { t0: performance.now(), tunnel, method, target, client, kind: "http", status: 0, done: false };
  }

  /**
   * The request's stream is open: the line is written when it ends (and its answer head was
   * seen: `answered`). Attached before the head is awaited: a small answer can end the stream
   * in the same turn as its head.
   */
  attach(stream: TunnelStream, e: AccessEntry, kind: "http" | "ws"): void {
    e.kind = kind;
    this.flowing.set(stream, e);
  }

  /** The app's answer head arrived with `status`. */
  answered(e: AccessEntry, status: number): void {
    e.status = status;
    if (e.ended && !(e.kind === "http" && status < 200)) this.finish(e, status, e.ended[0], e.ended[1]);
  }

  /** The gateway answered itself (an error), before or after the stream opened. */
  fail(e: AccessEntry, status: number, error: string): void {
    this.finish(e, status, 0, 0, error);
  }

  /** Called for every stream that ends (the pool's onStreamEnd). */
  streamEnded(stream: TunnelStream): void {
    const e = this.flowing.get(stream);
    if (!e) return;
    this.flowing.delete(stream);
    // no answer head seen yet: `answered` finishes it; if none comes, fail() logs the gateway's answer
    if (e.status === 0) {
      e.ended = [stream.bytesSent, stream.bytesReceived];
      return;
    }
    if (e.kind === "http" && e.status < 200) return; // answered with a 502 by the gateway: fail()
    this.finish(e, e.status, stream.bytesSent, stream.bytesReceived);
  }

  private finish(e: AccessEntry, status: number, bytesIn: number, bytesOut: number, error?: string): void {
    if (e.done) return;
    e.done = true;
    const failed = status >= 400 || error !== undefined;
    if (!failed && (this.o.mode === "errors" || (this.o.sample < 1 && this.random() >= this.o.sample))) return;
    const line: AccessLogLine = {
      tunnel: e.tunnel,
      kind: e.kind,
      method: e.method,
      path: logPath(e.target),
      status,
      ms: Math.round((performance.now() - e.t0) * 10) / 10,
      bytes_in: bytesIn,
      bytes_out: bytesOut,
      client: e.client,
    };
    if (error) line.error = error;
    this.o.write(line);
  }
}

/** An AccessLog for the settings, or undefined when off (then the server does no per-request work for it). */
export function createAccessLog(mode: AccessLogMode, sample: number, write: (line: AccessLogLine) => void): AccessLog | undefined {
  return mode === "off" ? undefined : new AccessLog({ mode, sample, write });
}

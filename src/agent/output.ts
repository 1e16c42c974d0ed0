/**
 * What `azhexgate start` shows: a human view in a terminal (ready banner, one line per request,
 * state changes) or, with --json, one JSON object per line on stdout (`ready`, `request`,
 * `state`, `error`). Nothing here ever prints a token or a key.
 */
import type { RequestEvent } from "./forward.ts";
import type { AgentState } from "./supervisor.ts";

export type { RequestEvent };

export interface Output {
  /** `loopback_url`: embedded only, http://127.0.0.1:PORT reaching the tunnel whatever the Host; `inspect_url`: the request inspector. */
  ready(t: { public_url: string; local_url: string; tunnel_id: string; loopback_url?: string; inspect_url?: string; name?: string }): void;
  request(t: { tunnel_id: string }, e: RequestEvent): void;
  state(t: { tunnel_id?: string; local_url: string }, s: AgentState): void;
  error(code: string, message: string, fields?: Record<string, unknown>): void;
  /** Something to know that is not a failure (e.g. nothing listening on the port yet). */
  warn(code: string, message: string, fields?: Record<string, unknown>): void;
  info(message: string): void;
  /** The status view reads a tunnel's open connections from here. */
  track?(localUrl: string, inFlight: () => number): void;
  /** Last redraw of a live view; no more timers. */
  close?(): void;
}

export function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** One request as a human line: method, path, status, duration, bytes, close code / error. */
export function requestLine(e: RequestEvent): string {
  const extra = [e.closeCode !== undefined ? `closed ${e.closeCode}` : "", e.error ?? ""].filter(Boolean).join(", ");
  return `${(e.kind === "ws" ? "WS" : e.method).padEnd(7)} ${e.target.length > 60 ? `${e.target.slice(0, 57)}...` : e.target.padEnd(60)} ${e.status} ${e.ms.toFixed(0).padStart(5)} ms ${size(e.bytes).padStart(9)}${extra ? `  ${extra}` : ""}`;
}

/**
 * The output for this process: JSON events with --json; the live status view when stdout is a
 * terminal (not TERM=dumb); plain lines otherwise. Colours only on a terminal without NO_COLOR.
 */
export async function outputFor(json: boolean, env: Record<string, string | undefined> = process.env): Promise<Output> {
  if (json || !process.stdout.isTTY || env.TERM === "dumb") return createOutput(json);
  const { createStatusView } = await import("./status-view.ts");
  return createStatusView({
    write: (s) => process.stdout.write(s),
    columns: () => process.stdout.columns,
    color: !env.NO_COLOR,
  });
}

export function createOutput(json: boolean, write: (line: string) => void = (l) => process.stdout.write(`${l}\n`), err: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Output {
  if (json) {
    const emit = (o: Record<string, unknown>) => write(JSON.stringify({ ...o, time: new Date().toISOString() }));
    return {
      ready: (t) => emit({ event: "ready", ...t }),
      request: (t, e) =>
        emit({
          event: "request",
          tunnel_id: t.tunnel_id,
          kind: e.kind,
          method: e.method,
          path: e.target,
          status: e.status,
          ms: Math.round(e.ms * 10) / 10,
          bytes: e.bytes,
          ...(e.error ? { error: e.error } : {}),
          ...(e.closeCode !== undefined ? { close_code: e.closeCode } : {}),
        }),
      state: (t, s) => {
        const { error: _e, ...rest } = s as AgentState & { error?: Error };
        emit({ event: "state", ...t, ...rest });
      },
      error: (code, message, fields) => emit({ event: "error", code, message, ...fields }),
      warn: (code, message, fields) => emit({ event: "warning", code, message, ...fields }),
      info: (message) => emit({ event: "info", message }),
    };
  }
  return {
    ready: (t) =>
      write(
        t.name !== undefined
          ? `TCP tunnel established\nName:          ${t.name}\nForwarding to: ${t.local_url}\nConnect with:  azhexgate connect ${t.name} --port PORT  (or --stdio as an ssh ProxyCommand)\n`
          : `Tunnel established\nPublic URL:    ${t.public_url}\nForwarding to: ${t.local_url}\n` +
          (t.loopback_url ? `Loopback URL:  ${t.loopback_url}  (same tunnel for any local client: Node, Python, wget)\n` : "") +
          (t.inspect_url ? `Inspector:     ${t.inspect_url}\n` : ""),
      ),
    request: (_t, e) => write(requestLine(e)),
    state: (t, s) => {
      if (s.state === "reconnecting") err(`${t.local_url}: reconnecting in ${(s.inMs / 1000).toFixed(1)} s (${s.reason})`);
      else if (s.state === "online") err(`${t.local_url}: online at ${s.publicUrl}`);
      // offline because of an error: the error line that follows says it (once, not twice)
      else if (s.state === "offline" && !s.error) err(`${t.local_url}: offline (${s.reason})`);
      else if (s.state === "stopping" && s.inFlight > 0) err(`stopping: waiting for ${s.inFlight} request(s) in flight, up to ${s.graceMs / 1000} s (Ctrl+C again to stop now)`);
    },
    error: (_code, message, fields) => err(`error: ${typeof fields?.local_url === "string" ? `${fields.local_url}: ` : ""}${message}`),
    warn: (_code, message) => err(`warning: ${message}`),
    info: (message) => err(message),
  };
}

/**
 * The live status view of `azhexgate start` on a terminal: a panel at the bottom of the screen,
 * redrawn in place at most every 250 ms (state, public / loopback / local URLs, requests and
 * requests/s, p50 / p90 latency, open connections, bytes in / out per tunnel), with request lines
 * and messages scrolling above it. Colour only when allowed (`color`: a TTY and no NO_COLOR).
 * Used only when stdout is a TTY and --json is off; otherwise output.ts prints plain lines.
 */
import type { Output, RequestEvent } from "./output.ts";
import { requestLine, size } from "./output.ts";
import type { AgentState } from "./supervisor.ts";

export interface StatusViewOptions {
  /** Raw writes to the terminal. */
  write: (s: string) => void;
  /** Terminal width (0 / undefined: 80). */
  columns: () => number | undefined;
  color: boolean;
  /** Redraw period (default 250 ms). */
  intervalMs?: number;
}

const RATE_WINDOW_MS = 10_000;
const LATENCIES = 256;
/** At most this many request / message lines per redraw (a burst is summarised). */
const MAX_LINES_PER_FRAME = 40;

interface TunnelView {
  localUrl: string;
  tunnelId?: string;
  publicUrl?: string;
  loopbackUrl?: string;
  inspectUrl?: string;
  state: string;
  bad: boolean;
  requests: number;
  errors: number;
  /** Completion times (ms) in the rate window. */
  recent: number[];
  latencies: number[];
  bytesIn: number;
  bytesOut: number;
  inFlight?: () => number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function ms(v: number): string {
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

function stateText(s: AgentState): { text: string; bad: boolean } {
  switch (s.state) {
    case "connecting":
      return { text: "connecting", bad: false };
    case "online":
      return { text: "online", bad: false };
    case "reconnecting":
      return { text: `reconnecting in ${(s.inMs / 1000).toFixed(1)} s (${s.reason})`, bad: true };
    case "stopping":
      return { text: `stopping (${s.inFlight} in flight)`, bad: false };
    case "offline":
      return { text: `offline (${s.reason})`, bad: true };
  }
}

export interface StatusView extends Output {
  /** Final redraw and no more timers. */
  close(): void;
}

export function createStatusView(o: StatusViewOptions): StatusView {
  const tunnels = new Map<string, TunnelView>();
  const byId = new Map<string, TunnelView>();
  const pending: string[] = [];
  let skipped = 0;
  let drawn = 0;
  let dirty = true;
  let closed = false;
  const t0 = performance.now();
  const sgr = (code: string, s: string) => (o.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const bold = (s: string) => sgr("1", s);
  const dim = (s: string) => sgr("2", s);
  const green = (s: string) => sgr("32", s);
  const red = (s: string) => sgr("31", s);
  const yellow = (s: string) => sgr("33", s);

  const view = (localUrl: string): TunnelView => {
    let t = tunnels.get(localUrl);
    if (!t) {
      t = { localUrl, state: "connecting", bad: false, requests: 0, errors: 0, recent: [], latencies: [], bytesIn: 0, bytesOut: 0 };
      tunnels.set(localUrl, t);
    }
    return t;
  };

  const log = (line: string) => {
    if (pending.length >= MAX_LINES_PER_FRAME) skipped++;
    else pending.push(line);
    dirty = true;
  };

  const width = () => Math.max(20, (o.columns() || 80) - 1);
  /** A line cut to the terminal width (so nothing wraps and the cursor arithmetic holds). */
  const fit = (plain: string, styled = plain) => (plain.length > width() ? plain.slice(0, width() - 3) + "..." : styled);
  const row = (label: string, value: string, styled?: string) => fit(`${label.padEnd(14)}${value}`, `${dim(label.padEnd(14))}${styled ?? value}`);

  const panel = (): string[] => {
    const now = performance.now();
    const lines = [fit("azhexgate  (Ctrl+C to stop)", `${bold("azhexgate")}  ${dim("(Ctrl+C to stop)")}`)];
    for (const t of tunnels.values()) {
      while (t.recent.length && now - t.recent[0]! > RATE_WINDOW_MS) t.recent.shift();
      const windowS = Math.min(RATE_WINDOW_MS, Math.max(1000, now - t0)) / 1000;
      const sorted = [...t.latencies].sort((a, b) => a - b);
      const open = t.inFlight?.() ?? 0;
      lines.push("");
      lines.push(row("Status", t.state, t.bad ? red(t.state) : t.state === "online" ? green(t.state) : yellow(t.state)));
      if (t.publicUrl) lines.push(row("Public URL", t.publicUrl, bold(t.publicUrl)));
      if (t.loopbackUrl) lines.push(row("Loopback URL", t.loopbackUrl));
      if (t.inspectUrl) lines.push(row("Inspector", t.inspectUrl));
      lines.push(row("Forwarding", t.localUrl));
      const errs = t.errors ? `, ${t.errors} failed` : "";
      lines.push(row("Requests", `${t.requests} total, ${(t.recent.length / windowS).toFixed(1)}/s${errs}`));
      lines.push(row("Latency", sorted.length ? `p50 ${ms(percentile(sorted, 50))}, p90 ${ms(percentile(sorted, 90))}` : "-"));
      lines.push(row("Connections", `${open} open`));
      lines.push(row("Bytes", `in ${size(t.bytesIn)}, out ${size(t.bytesOut)}`));
    }
    return lines;
  };

  let ticks = 0;
  const redraw = () => {
    // on a change, or once a second (the rate window moves, connections open and close)
    if (!dirty && ++ticks % 4 !== 0) return;
    let s = drawn ? `\r\x1b[${drawn}A\x1b[J` : "";
    for (const l of pending) s += `${l}\n`; // above the panel: may wrap, never cut
    if (skipped) s += `${dim(`... ${skipped} more line(s)`)}\n`;
    pending.length = 0;
    skipped = 0;
    const lines = panel();
    s += `${lines.join("\n")}\n`;
    drawn = lines.length;
    dirty = false;
    o.write(s);
  };

  // a steady tick: the rate window moves and open connections change without events
  const timer = setInterval(redraw, o.intervalMs ?? 250);
  timer.unref?.();

  return {
    ready(t) {
      const v = view(t.local_url);
      v.tunnelId = t.tunnel_id;
      v.publicUrl = t.public_url;
      v.loopbackUrl = t.loopback_url;
      v.inspectUrl = t.inspect_url;
      v.state = "online";
      v.bad = false;
      byId.set(t.tunnel_id, v);
      dirty = true;
    },
    request(t, e: RequestEvent) {
      const v = byId.get(t.tunnel_id);
      if (v) {
        v.requests++;
        if (e.status >= 500 || e.error) v.errors++;
        v.recent.push(performance.now());
        if (v.latencies.length >= LATENCIES) v.latencies.shift();
        v.latencies.push(e.ms);
        const bytesIn = e.bytesIn ?? 0;
        v.bytesIn += bytesIn;
        v.bytesOut += e.kind === "ws" ? Math.max(0, e.bytes - bytesIn) : e.bytes;
      }
      const line = requestLine(e);
      log(e.status >= 500 || e.error ? red(line) : line);
    },
    state(t, s) {
      const v = view(t.local_url);
      const { text, bad } = stateText(s);
      v.state = text;
      v.bad = bad;
      dirty = true;
    },
    error: (_code, message, fields) => log(red(`error: ${typeof fields?.local_url === "string" ? `${fields.local_url}: ` : ""}${message}`)),
    warn: (_code, message) => log(yellow(`warning: ${message}`)),
    info: (message) => {
      for (const l of message.split("\n")) log(l);
    },
    track(localUrl, inFlight) {
      view(localUrl).inFlight = inFlight;
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      dirty = true;
      redraw();
    },
  };
}

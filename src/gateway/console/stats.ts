/**
 * Per-tunnel figures for the console, read from this gateway instance's metrics (the same
 * series `/metrics` serves): requests by status class, body bytes each way, open HC sessions to
 * the agent and streams in flight. Counters are per gateway instance and start at zero when it
 * starts. Pure reading: nothing here changes a series.
 */
import type { GatewayMetrics } from "../metrics.ts";

export interface TunnelCounters {
  requests: number;
  byClass: Record<string, number>;
  bytesIn: number;
  bytesOut: number;
  sessions: number;
  streams: number;
}

/** Label values of a rendered label key such as `code="2xx",kind="http",tunnel="abc"`. */
function labels(key: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of key.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!.replace(/\\(.)/g, "$1");
  return out;
}

export function tunnelCounters(m: GatewayMetrics): Map<string, TunnelCounters> {
  m.registry.render(); // runs the collectors that refresh the session / stream gauges
  const out = new Map<string, TunnelCounters>();
  const of = (id: string) => {
    let c = out.get(id);
    if (!c) out.set(id, (c = { requests: 0, byClass: {}, bytesIn: 0, bytesOut: 0, sessions: 0, streams: 0 }));
    return c;
  };
  for (const [k, v] of m.requests.values) {
    const l = labels(k);
    if (!l.tunnel) continue;
    const c = of(l.tunnel);
    c.requests += v;
    if (l.code) c.byClass[l.code] = (c.byClass[l.code] ?? 0) + v;
  }
  for (const [k, v] of m.bytes.values) {
    const l = labels(k);
    if (!l.tunnel) continue;
    if (l.direction === "in") of(l.tunnel).bytesIn += v;
    else if (l.direction === "out") of(l.tunnel).bytesOut += v;
  }
  for (const [k, v] of m.sessions.values) {
    const l = labels(k);
    if (l.tunnel) of(l.tunnel).sessions = v;
  }
  for (const [k, v] of m.streams.values) {
    const l = labels(k);
    if (l.tunnel) of(l.tunnel).streams = v;
  }
  return out;
}

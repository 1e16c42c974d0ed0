/**
 * Counters and gauges rendered in the Prometheus text format (v0.0.4). Hand-written on purpose:
 * we need a handful of series, and prom-client brings Node-specific collectors and two
 * dependencies for what is ~60 lines here.
 */

type Labels = Record<string, string>;

function key(labels: Labels): string {
  return Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
    .join(",");
}

class Series {
  readonly values = new Map<string, number>();
  /** Labels as given (names and values, caller's order) → rendered label key: the hot path never sorts or escapes. */
  private readonly keys = new Map<string, string>();
  constructor(readonly name: string, readonly help: string, readonly type: "counter" | "gauge") {}
  private keyOf(labels: Labels): string {
    let memo = "";
    for (const n in labels) memo += `${n}\u0000${labels[n]}\u0000`;
    let k = this.keys.get(memo);
    if (k === undefined) {
      k = key(labels);
      if (this.keys.size < 100_000) this.keys.set(memo, k);
    }
    return k;
  }
  inc(labels: Labels = {}, by = 1): void {
    const k = this.keyOf(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  /** An incrementer for one label set, its key computed once (for per-request hot paths). */
  counterFor(labels: Labels): (by?: number) => void {
    const k = this.keyOf(labels);
    return (by = 1) => {
      this.values.set(k, (this.values.get(k) ?? 0) + by);
    };
  }
  set(labels: Labels, value: number): void {
    this.values.set(this.keyOf(labels), value);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ""} ${v}`);
    return lines.join("\n");
  }
}

export class Metrics {
  private readonly series: Series[] = [];
  private readonly collectors: Array<() => void> = [];

  counter(name: string, help: string): Series {
    const s = new Series(name, help, "counter");
    this.series.push(s);
    return s;
  }

  gauge(name: string, help: string): Series {
    const s = new Series(name, help, "gauge");
    this.series.push(s);
    return s;
  }

  /** Runs before each render (for gauges read from live state). */
  collect(fn: () => void): void {
    this.collectors.push(fn);
  }

  render(): string {
    for (const c of this.collectors) c();
    return `${this.series.map((s) => s.render()).join("\n")}\n`;
  }
}

/** The gateway's series. */
export function gatewayMetrics() {
  const m = new Metrics();
  return {
    registry: m,
    requests: m.counter("azhexgate_requests_total", "Public requests by tunnel, kind and status class."),
    errors: m.counter("azhexgate_gateway_errors_total", "Gateway-generated errors by code."),
    bytes: m.counter("azhexgate_bytes_total", "Body bytes through tunnels by tunnel and direction (in = to the agent)."),
    sessions: m.gauge("azhexgate_tunnel_sessions", "Open HC sessions per tunnel."),
    streams: m.gauge("azhexgate_streams_active", "Open streams per tunnel."),
    refusals: m.counter("azhexgate_access_refusals_total", "Requests refused by a tunnel's access policy or limits, by tunnel and reason."),
  };
}
export type GatewayMetrics = ReturnType<typeof gatewayMetrics>;

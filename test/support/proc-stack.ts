/**
 * The whole data path as separate processes (relay emulator, gateway, agent, a local app), so a
 * test can read each one's memory from /proc: the hardening tests' memory bounds.
 */
import { rss, spawn, type Child } from "../../bench/lib/proc.ts";
import { startTunnelProcs } from "../../bench/lib/tunnel-procs.ts";

export interface ProcStack {
  relay: Child;
  gateway: Child;
  agent: Child;
  origin: Child;
  /** Gateway base URL (send `Host: {host}`), and the tunnel's host name. */
  gatewayUrl: string;
  wsUrl: string;
  host: string;
  /** RSS in MB of a part. */
  rssMb(c: Child): number;
  /** The gateway's `azhexgate_streams_active` summed over tunnels. */
  gatewayStreams(): Promise<number>;
  /** The agent's streams in flight. */
  agentStreams(): Promise<number>;
  stop(): Promise<void>;
}

const root = new URL("../../", import.meta.url).pathname;

export async function startProcStack(): Promise<ProcStack> {
  const hc = `hc-${Math.floor(Math.random() * 1e9)}`;
  const id = "tun" + Math.random().toString(36).slice(2, 10);
  const started: Child[] = [];
  try {
    const origin = await spawn("origin", ["bun", "test/support/roles/ws-origin.ts"], { cwd: root });
    started.push(origin);
    const { relay, gateway, startAgent } = await startTunnelProcs({ id, hc, origin: `http://127.0.0.1:${origin.ready.port}`, onStart: (c) => started.push(c) });
    const agent = await startAgent(`${root}test/support/roles/agent.ts`);
    const port = Number(gateway.ready.port);
    const host = String(gateway.ready.host);
    return {
      relay,
      gateway,
      agent,
      origin,
      gatewayUrl: `http://127.0.0.1:${port}`,
      wsUrl: `ws://127.0.0.1:${port}`,
      host,
      rssMb: (c) => rss(c.pid) / (1 << 20),
      async gatewayStreams() {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { host: "localhost" } })).text();
        let n = 0;
        for (const m of text.matchAll(/^azhexgate_streams_active\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
        return n;
      },
      async agentStreams() {
        return Number(await (await fetch(`http://127.0.0.1:${agent.ready.status}/streams`)).text());
      },
      async stop() {
        for (const c of started.reverse()) await c.stop();
      },
    };
  } catch (e) {
    for (const c of started.reverse()) await c.stop();
    throw e;
  }
}

/** Polls `f` until it returns true or `ms` pass; returns the last result. */
export async function until(f: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await f()) return true;
    await Bun.sleep(100);
  }
  return f();
}

/**
 * One azhexgate tunnel as separate processes: the relay emulator and the gateway (bench/roles),
 * and an agent to start (and restart) on demand, all sharing one environment that names the
 * relay's key, the tunnel and the origin. Used by the bench rows, the soak and the tests' ProcStack.
 */
import { join } from "node:path";
import { spawn, type Child } from "./proc.ts";

const BENCH = join(import.meta.dir, "..");
/** The repository root: every role runs there (bunfig.toml, relative paths). */
const ROOT = join(BENCH, "..");

export interface TunnelProcs {
  relay: Child;
  gateway: Child;
  /** The roles' environment (relay endpoint and key, tunnel id, hybrid connection, origin URL). */
  env: Record<string, string>;
  /** Starts an agent process (default script bench/roles/agent.ts) with that environment. */
  startAgent(script?: string): Promise<Child>;
}

export interface TunnelProcsOptions {
  /** Tunnel id and hybrid connection name. */
  id: string;
  hc: string;
  /** The origin the agent forwards to, http://127.0.0.1:PORT. */
  origin: string;
  /** Extra bun flags per role ("relay" | "gateway" | "agent"). */
  bunFlags?: (role: string) => string[];
  /** Called with each process as soon as it is up (so a caller can stop it if a later one fails). */
  onStart?: (c: Child) => void;
}

export async function startTunnelProcs(o: TunnelProcsOptions): Promise<TunnelProcs> {
  const flags = o.bunFlags ?? (() => []);
  const started = <T extends Child>(c: T): T => (o.onStart?.(c), c);
  const relay = started(await spawn("relay", ["bun", ...flags("relay"), join(BENCH, "roles/relay.ts"), "0", o.hc], { cwd: ROOT }));
  const env = {
    BENCH_RELAY: String(relay.ready.endpoint),
    BENCH_KEY_NAME: String(relay.ready.keyName),
    BENCH_KEY: String(relay.ready.key),
    BENCH_TUNNEL: o.id,
    BENCH_HC: o.hc,
    BENCH_ORIGIN: o.origin,
  };
  const gateway = started(await spawn("gateway", ["bun", "--max-http-header-size=262144", ...flags("gateway"), join(BENCH, "roles/gateway.ts"), "0"], { cwd: ROOT, env }));
  return {
    relay,
    gateway,
    env,
    startAgent: async (script = join(BENCH, "roles/agent.ts")) => started(await spawn("agent", ["bun", ...flags("agent"), script], { cwd: ROOT, env })),
  };
}

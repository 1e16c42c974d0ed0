/**
 * The WAN scenario's rows (issue 17): the same rows as the main bench, with a delay line
 * (bench/lib/delay-proxy.ts, `delayMs` each way) on every leg. azhexgate: the gateway and the
 * agent each dial the relay emulator through their own delay proxy (two legs). ssh -R and
 * wstunnel: their one client↔server connection goes through two delay proxies in a chain, so the
 * delayed path is the same length (floor = 4 × delay for one request/response).
 */
import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, portOpen, spawn, type Child } from "./lib/proc.ts";
import { sshReverse, startSshd, which } from "./lib/sshd.ts";

const BENCH = import.meta.dir;
const ROOT = join(BENCH, "..");
const NM = join(ROOT, "node_modules");

export interface WanHandle {
  base: string;
  host?: string;
  /** Process groups whose peak RSS is reported: the tunnel's two ends. */
  ends: Record<string, number>;
  /** Restarts the developer-side end and returns once it is up (the tunnel is cold). */
  restartClient(): Promise<void>;
  stop(): Promise<void>;
}

export interface WanRow {
  name: string;
  start(originPort: number, delayMs: number): Promise<WanHandle>;
}

/** A delay proxy process in front of `targetPort`; returns its port. */
async function delay(name: string, targetPort: number, delayMs: number, all: Child[]): Promise<number> {
  const c = await spawn(name, ["bun", join(BENCH, "lib/delay-proxy.ts"), String(targetPort), String(delayMs)]);
  all.push(c);
  return Number(c.ready.port);
}

/** Two delay proxies in a chain in front of `targetPort` (the same path length as the two relay legs). */
async function chain(targetPort: number, delayMs: number, all: Child[]): Promise<number> {
  return delay("delay-b", await delay("delay-a", targetPort, delayMs, all), delayMs, all);
}

async function answers(base: string, host?: string): Promise<boolean> {
  try {
    const r = await fetch(`${base}/small`, { headers: host ? { Host: host } : {}, signal: AbortSignal.timeout(3000) });
    return r.status === 200 && (await r.text()) === "Hello, world!";
  } catch {
    return false;
  }
}

async function until(ok: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`${what} never answered`);
    await Bun.sleep(50);
  }
}

const stopAllOf = async (cs: Child[]) => {
  for (const c of [...cs].reverse()) await c.stop();
};

export const azhexgate: WanRow = {
  name: "azhexgate",
  async start(originPort, delayMs) {
    const all: Child[] = [];
    const id = String(10_000_000 + Math.floor(Math.random() * 89_999_999));
    const hc = `hc-${id}`;
    try {
      const relay = await spawn("relay", ["bun", join(BENCH, "roles/relay.ts"), "0", hc], { cwd: ROOT });
      all.push(relay);
      const gp = await delay("delay-gateway", Number(relay.ready.port), delayMs, all);
      const ap = await delay("delay-agent", Number(relay.ready.port), delayMs, all);
      const env = { BENCH_KEY_NAME: String(relay.ready.keyName), BENCH_KEY: String(relay.ready.key), BENCH_TUNNEL: id, BENCH_HC: hc, BENCH_ORIGIN: `http://127.0.0.1:${originPort}` };
      const gateway = await spawn("gateway", ["bun", "--max-http-header-size=262144", join(BENCH, "roles/gateway.ts"), "0"], { cwd: ROOT, env: { ...env, BENCH_RELAY: `ws://127.0.0.1:${gp}` } });
      all.push(gateway);
      const startAgent = async () => {
        const a = await spawn("agent", ["bun", join(BENCH, "roles/agent.ts")], { cwd: ROOT, env: { ...env, BENCH_RELAY: `ws://127.0.0.1:${ap}` } });
        all.push(a);
        return a;
      };
      let agent = await startAgent();
      const base = `http://127.0.0.1:${gateway.ready.port}`;
      const host = `${id}.localhost`;
      await until(() => answers(base, host), "azhexgate");
      const h: WanHandle = {
        base,
        host,
        ends: { gateway: gateway.pid, agent: agent.pid },
        async restartClient() {
          await agent.stop();
          all.splice(all.indexOf(agent), 1);
          await Bun.sleep(300 + 4 * delayMs); // the gateway sees its sessions close
          agent = await startAgent();
          h.ends.agent = agent.pid;
        },
        stop: () => stopAllOf(all),
      };
      return h;
    } catch (e) {
      await stopAllOf(all);
      throw e;
    }
  },
};

export const ssh: WanRow = {
  name: "ssh -R",
  async start(originPort, delayMs) {
    if (!which("sshd") || !which("ssh")) throw new Error("OpenSSH server/client not installed");
    const all: Child[] = [];
    const dir = join(tmpdir(), `azhexgate-wan-${process.pid}`, "ssh");
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    try {
      const { sshd, port: sshdPort } = await startSshd(dir);
      all.push(sshd);
      const via = await chain(sshdPort, delayMs, all);
      const port = freePort();
      const base = `http://127.0.0.1:${port}`;
      const startClient = async () => {
        const c = await spawn("ssh", sshReverse(dir, via, port, originPort), { probe: () => portOpen(port), timeoutMs: 30_000 });
        all.push(c);
        return c;
      };
      let client = await startClient();
      await until(() => answers(base), "ssh -R");
      const h: WanHandle = {
        base,
        ends: { sshd: sshd.pid, ssh: client.pid },
        async restartClient() {
          await client.stop();
          all.splice(all.indexOf(client), 1);
          for (let i = 0; i < 100 && (await portOpen(port)); i++) await Bun.sleep(50);
          client = await startClient();
          h.ends.ssh = client.pid;
        },
        stop: () => stopAllOf(all),
      };
      return h;
    } catch (e) {
      await stopAllOf(all);
      throw e;
    }
  },
};

export const wstunnel: WanRow = {
  name: "wstunnel",
  async start(originPort, delayMs) {
    const bin = join(NM, "wstunnel/bin/wstt.js");
    if (!(await Bun.file(bin).exists()) || !which("node")) throw new Error("npm wstunnel or node missing");
    const all: Child[] = [];
    try {
      const wsPort = freePort();
      const server = await spawn("wstunnel-server", ["node", bin, "-s", `127.0.0.1:${wsPort}`, "-t", `127.0.0.1:${originPort}`], { probe: () => portOpen(wsPort) });
      all.push(server);
      const via = await chain(wsPort, delayMs, all);
      const port = freePort();
      const base = `http://127.0.0.1:${port}`;
      const startClient = async () => {
        const c = await spawn("wstunnel-client", ["node", bin, "-t", String(port), `ws://127.0.0.1:${via}`], { probe: () => portOpen(port) });
        all.push(c);
        return c;
      };
      let client = await startClient();
      await until(() => answers(base), "wstunnel");
      const h: WanHandle = {
        base,
        ends: { "wstunnel-server": server.pid, "wstunnel-client": client.pid },
        async restartClient() {
          await client.stop();
          all.splice(all.indexOf(client), 1);
          client = await startClient();
          h.ends["wstunnel-client"] = client.pid;
        },
        stop: () => stopAllOf(all),
      };
      return h;
    } catch (e) {
      await stopAllOf(all);
      throw e;
    }
  },
};

export const WAN_ROWS: WanRow[] = [azhexgate, ssh, wstunnel];

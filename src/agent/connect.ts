/**
 * Runs `azhexgate connect NAME` (issue 16): the connecting side of a TCP tunnel. Asks the
 * management API for a short-lived Send-only token for the tunnel's hybrid connection, dials the
 * relay directly as a sender (no gateway hop) and multiplexes every local connection as a TCP
 * stream over a small pool of tunnel sessions (the gateway's SessionPool: warm session, growth
 * when busy, in-band PING eviction, retirement before the token expires). Renewal: the pool
 * retires a session before its token expires and dials a replacement; `dial` fetches a fresh token
 * for it, so open connections finish on the old session and nothing is dropped.
 *
 * Local side: a listener on 127.0.0.1 (`--port`), or stdin / stdout (`--stdio`, one connection,
 * for ssh's ProxyCommand). Failures a user can act on (not authorized, unknown name, tunnel
 * offline, nothing listening at the target) go to stderr, one line each.
 */
import type { Socket } from "bun";
import { RelayError } from "../hc/errors.ts";
import { connectSender } from "../hc/sender.ts";
import { SessionPool } from "../tunnel/pool.ts";
import type { StreamResetError, TunnelStream } from "../tunnel/stream.ts";
import { ApiClientError, type ApiClient, type ConnectGrant } from "./api-client.ts";
import { EXIT, terminalExitCode } from "./exit-codes.ts";
import { bridge, type Bridge, type ByteEnd, SocketEnd } from "./tcp-bridge.ts";

export interface ConnectConfig {
  name: string;
  /** Local listener port (0 = any: the chosen port is printed); undefined with `stdio`. */
  port?: number;
  host: string;
  stdio: boolean;
  json: boolean;
}

/** A sentence for a failure to open a connection through the tunnel. */
export function connectFailure(name: string, err: unknown): string {
  if (err instanceof RelayError) {
    if (err.code === "not_found" || err.code === "timeout") {
      return `tunnel "${name}" is offline: the relay found nobody serving it (${err.message}); start azhexgate tcp on the serving side.`;
    }
    if (err.code === "unauthorized" || err.code === "forbidden") return `the relay refused the connect token for "${name}" (${err.message}); try again.`;
    return `cannot reach tunnel "${name}" through the relay: ${err.message}`;
  }
  return (err as Error)?.message ?? String(err);
}

/** The connect side's tunnel: grants, the session pool, one stream per local connection. */
export function tunnelTo(client: ApiClient, name: string, first: ConnectGrant) {
  let grant = first;
  let issued = Date.now();
  /** A grant with at least a third of its life left (renewed here, before the pool needs it). */
  const fresh = async (): Promise<ConnectGrant> => {
    const left = grant.expiresAt - Date.now();
    if (left < (grant.expiresAt - issued) / 3) {
      grant = await client.connect(name);
      issued = Date.now();
    }
    return grant;
  };
  const pool = new SessionPool({
    min: 1,
    max: 4,
    busyStreams: 32,
    async dial() {
      const g = await fresh();
      try {
        return await connectSender({ endpoint: g.endpoint, hcPath: g.hcPath, token: g.token });
      } catch (err) {
        if (err instanceof RelayError && err.code === "unauthorized") {
          grant = await client.connect(name); // rotated key, or a clock skew: one fresh token
          issued = Date.now();
          return connectSender({ endpoint: grant.endpoint, hcPath: grant.hcPath, token: grant.token });
        }
        throw err;
      }
    },
  });
  return {
    pool,
    /** Opens one TCP stream (a session is dialed when none is open). */
    async open(): Promise<TunnelStream> {
      const session = await pool.acquire();
      return session.openTcp(name);
    },
    close: () => pool.close(),
  };
}

/** stdin / stdout as the local end (`--stdio`). */
function stdioEnd(onDone: (code: number) => void): ByteEnd {
  return {
    write: (d) => process.stdout.write(d),
    drained: () => new Promise((r) => process.stdout.once("drain", () => r())),
    shutdown: () => process.stdout.end(),
    terminate: () => onDone(EXIT.failed),
    close: () => onDone(EXIT.ok),
    pause: () => process.stdin.pause(),
    resume: () => process.stdin.resume(),
  };
}

export async function runConnect(cfg: ConnectConfig, client: ApiClient): Promise<number> {
  const say = (line: string) => process.stderr.write(`azhexgate connect: ${line}\n`);
  let first: ConnectGrant;
  try {
    first = await client.connect(cfg.name);
  } catch (err) {
    say((err as Error).message);
    return err instanceof ApiClientError ? (terminalExitCode(err) ?? EXIT.failed) : EXIT.failed;
  }
  const tunnel = tunnelTo(client, cfg.name, first);
  const onPeerReset = (err: StreamResetError) => say(`connection reset: ${err.reason || `code ${err.code}`}`);

  if (cfg.stdio) {
    const { promise, resolve } = Promise.withResolvers<number>();
    let stream: TunnelStream;
    try {
      stream = await tunnel.open();
    } catch (err) {
      say(connectFailure(cfg.name, err));
      tunnel.close();
      return EXIT.failed;
    }
    const b = bridge(stream, stdioEnd(resolve), { resetReason: () => "the connecting side's stdin failed", onPeerReset });
    process.stdin.on("data", (d: Uint8Array) => b.data(d));
    process.stdin.on("end", () => b.end());
    process.stdin.on("error", (e) => b.closed(e));
    const code = await Promise.race([promise, b.done.then(() => promise)]);
    tunnel.close();
    return code;
  }

  type Conn = { b?: Bridge; end?: SocketEnd; early: Uint8Array[]; fin: boolean; closed?: Error | true };
  const server = Bun.listen<Conn>({
    hostname: cfg.host,
    port: cfg.port ?? 0,
    allowHalfOpen: true,
    socket: {
      open(s: Socket<Conn>) {
        s.data = { early: [], fin: false };
        const c = s.data;
        tunnel.open().then(
          (stream) => {
            if (c.closed) return stream.reset(0, "the local client went away");
            c.end = new SocketEnd(s);
            c.b = bridge(stream, c.end, { resetReason: (e) => `the connecting side's client reset the connection${e ? ` (${e.message})` : ""}`, onPeerReset });
            for (const d of c.early) c.b.data(d);
            c.early = [];
            if (c.fin) c.b.end();
          },
          (err) => {
            say(connectFailure(cfg.name, err));
            s.terminate();
          },
        );
      },
      data(s, d) {
        const c = s.data;
        if (c.b) c.b.data(d);
        else c.early.push(new Uint8Array(d));
      },
      end(s) {
        const c = s.data;
        if (c.b) c.b.end();
        else c.fin = true;
      },
      drain: (s) => s.data.end?.onDrain(),
      close(s, err) {
        const c = s.data;
        c.end?.onClose();
        if (c.b) c.b.closed(err);
        else c.closed = err ?? true;
      },
      error: (s, err) => s.data.b?.closed(err),
    },
  });
  const where = `${cfg.host}:${server.port}`;
  if (cfg.json) process.stdout.write(`${JSON.stringify({ event: "ready", name: cfg.name, listen: where, time: new Date().toISOString() })}\n`);
  else say(`tunnel "${cfg.name}" is reachable on ${where} (Ctrl+C to stop)`);
  // Dial the first session now: a tunnel that is offline is said at once, not at the first connection.
  tunnel.pool.acquire().catch((err) => say(connectFailure(cfg.name, err)));
  return new Promise<number>((resolve) => {
    const stop = () => {
      server.stop(true);
      tunnel.close();
      resolve(EXIT.ok);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

/**
 * The whole path for liveness tests: relay emulator, gateway (pool options and sender-token
 * lifetime chosen by the test), a supervised agent (keep-alive and session-liveness intervals
 * chosen by the test), and a local origin app. Plus `check()`, which fetches through the tunnel
 * and classifies the answer (ok / failed / a 200 with a truncated body, which must never happen),
 * and `probeAccept()`, which proves the control channel still delivers new rendezvous.
 */
import { superviseAgent, type SupervisorHandle, type SupervisorOptions } from "../../src/agent/supervisor.ts";
import type { PoolOptions } from "../../src/tunnel/pool.ts";
import { startGateway, type GatewayHandle } from "../../src/gateway/server.ts";
import { resourceUri } from "../../src/hc/address.ts";
import { createSasToken } from "../../src/hc/sas.ts";
import { connectSender } from "../../src/hc/sender.ts";
import { sasTokenProvider } from "../../src/hc/tokens.ts";
import { newKey } from "../../src/emulator/entities.ts";
import { startEmulator, type EmulatorHandle, type EmulatorOptions } from "../../src/emulator/server.ts";
import { StateLog } from "./states.ts";

export interface LivenessStackOptions {
  emulator?: EmulatorOptions;
  pool?: Omit<PoolOptions, "dial">;
  /** Lifetime of the gateway's sender SAS tokens (default 1 h). */
  senderTtlSeconds?: number;
  agent?: Partial<SupervisorOptions>;
  /** Runs after the emulator exists and before the agent connects (switch faults on here). */
  before?: (relay: EmulatorHandle, hcPath: string) => void;
}

export interface LivenessStack {
  relay: EmulatorHandle;
  gateway: GatewayHandle;
  sup: SupervisorHandle;
  states: StateLog;
  /** Supervisor log events, in order. */
  events: Array<{ event: string; fields?: Record<string, unknown> }>;
  /** Pool session events ("evicted" / "retired"). */
  poolEvents: string[];
  hcPath: string;
  url: string;
  reconnects(): number;
  stop(): Promise<void>;
}

export type Outcome = { kind: "ok" | "failed" | "truncated"; status: number; bytes: number; error?: string };

/** Deterministic body byte at offset i (so a wrong byte anywhere shows). */
const byteAt = (i: number) => (i * 31 + 7) & 0xff;

function body(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = byteAt(i);
  return b;
}

/**
 * The origin: `/bytes?n=N` answers N bytes with a Content-Length; `/stream?chunks=C&ms=M` answers
 * C chunks of 16 KiB, one per M ms, chunked (no length: only the framing tells a truncation).
 */
export function livenessOrigin(): ReturnType<typeof Bun.serve> {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    development: false,
    idleTimeout: 60,
    fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/bytes") return new Response(body(Number(url.searchParams.get("n") ?? 1000)));
      if (url.pathname === "/stream") {
        const chunks = Number(url.searchParams.get("chunks") ?? 5);
        const ms = Number(url.searchParams.get("ms") ?? 100);
        const whole = body(chunks * 16384);
        let i = 0;
        return new Response(
          new ReadableStream<Uint8Array>({
            async pull(c) {
              if (i >= chunks) return c.close();
              if (i > 0) await Bun.sleep(ms);
              c.enqueue(whole.slice(i * 16384, ++i * 16384));
            },
          }),
        );
      }
      return new Response("hello");
    },
  });
}

/** Expected length of a path's body (see livenessOrigin). */
function expectedLength(path: string): number {
  const u = new URL(path, "http://x");
  if (u.pathname === "/bytes") return Number(u.searchParams.get("n") ?? 1000);
  if (u.pathname === "/stream") return Number(u.searchParams.get("chunks") ?? 5) * 16384;
  return 5;
}

/** GET `url + path`, read the whole body, and classify: a 200 must carry every byte, unchanged. */
export async function check(url: string, path: string, timeoutMs = 15_000): Promise<Outcome> {
  let status = 0;
  let bytes = 0;
  try {
    const res = await fetch(url + path, { signal: AbortSignal.timeout(timeoutMs) });
    status = res.status;
    const buf = new Uint8Array(await res.arrayBuffer());
    bytes = buf.length;
    if (status !== 200) return { kind: "failed", status, bytes, error: res.headers.get("x-azhexgate-error") ?? undefined };
    const want = expectedLength(path);
    let same = buf.length === want;
    if (same && path.startsWith("/bytes")) for (let i = 0; i < buf.length && same; i += 97) same = buf[i] === byteAt(i);
    return same ? { kind: "ok", status, bytes } : { kind: "truncated", status, bytes };
  } catch (e) {
    return { kind: "failed", status, bytes, error: (e as Error).message };
  }
}

export async function startLivenessStack(o: LivenessStackOptions = {}): Promise<LivenessStack> {
  const id = String(10_000_000 + Math.floor(Math.random() * 89_999_999));
  const hcPath = `hc-${id}`;
  const listenKey = newKey();
  const origin = livenessOrigin();
  const relay = await startEmulator(o.emulator);
  const root = relay.entities.namespaceRules.get("RootManageSharedAccessKey")!;
  const senderTokens = sasTokenProvider(root.name, root.primaryKey, o.senderTtlSeconds ?? 3600);
  const poolEvents: string[] = [];
  const gateway = await startGateway({
    baseDomain: "localhost",
    resolveTunnel: (t) => (t === id ? { hcPath } : undefined),
    dial: (hc) => connectSender({ endpoint: relay.endpoint, hcPath: hc, token: senderTokens }),
    pool: { ...o.pool, onSessionEvent: (e) => poolEvents.push(e) },
  });
  relay.entities.upsert({ path: hcPath, rules: [{ name: "listen", rights: ["Listen"], primaryKey: listenKey }] });
  o.before?.(relay, hcPath);
  const sign = () => {
    const se = Math.floor(Date.now() / 1000) + 3600;
    return { token: createSasToken(resourceUri(relay.endpoint, hcPath), "listen", listenKey, se), expiresAt: se * 1000 };
  };
  const url = gateway.tunnelUrl(id);
  const states = new StateLog();
  const events: LivenessStack["events"] = [];
  const sup = superviseAgent({
    connect: async () => ({ endpoint: relay.endpoint, hcPath, publicUrl: url, sessionId: "s", ...sign() }),
    renew: async () => sign(),
    origin: `http://127.0.0.1:${origin.port}`,
    hostHeader: "rewrite",
    onState: states.push,
    log: (event, fields) => events.push({ event, fields }),
    ...o.agent,
  });
  await states.next("online");
  return {
    relay,
    gateway,
    sup,
    states,
    events,
    poolEvents,
    hcPath,
    url,
    reconnects: () => states.of("reconnecting").length,
    async stop() {
      relay.faults.reset();
      await sup.stop({ graceMs: 0 }).catch(() => {});
      await gateway.stop().catch(() => {});
      await relay.stop().catch(() => {});
      origin.stop(true);
    },
  };
}

/** A raw sender through the relay: resolves true once the agent accepted it and said hello (the control channel delivered the accept). */
export async function probeAccept(s: LivenessStack, timeoutMs = 5000): Promise<boolean> {
  const root = s.relay.entities.namespaceRules.get("RootManageSharedAccessKey")!;
  const conn = await connectSender({ endpoint: s.relay.endpoint, hcPath: s.hcPath, token: sasTokenProvider(root.name, root.primaryKey), timeoutMs });
  try {
    return await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      conn.on("message", (m) => {
        clearTimeout(t);
        resolve(typeof m === "string" && m.includes('"role":"agent"'));
      });
    });
  } finally {
    conn.close(1000);
  }
}

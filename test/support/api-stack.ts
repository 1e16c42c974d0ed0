/**
 * The management API on loopback for tests, from real pieces: relay emulator, local binding,
 * SQLite registry, env API keys, access policy, tunnel service, and the API served by Bun.serve
 * (port 0, `server.requestIP` as the peer). Every response and log line is kept for secret scans;
 * `(method, route, status)` triples are kept for the OpenAPI coverage check.
 */
import { type AccessOptions, createAccessPolicy } from "../../src/api/access.ts";
import { loadApiKeys, type ApiKeyStore } from "../../src/api/keys.ts";
import { createManagementApi } from "../../src/api/routes.ts";
import { TunnelService, type TunnelServiceOptions } from "../../src/api/tunnels.ts";
import { createLocalBinding } from "../../src/control/local.ts";
import type { Provisioner, RelayBinding } from "../../src/control/types.ts";
import { startEmulator, type EmulatorHandle } from "../../src/emulator/server.ts";
import { createLogger } from "../../src/log.ts";
import { openSqliteRegistry } from "../../src/registry/sqlite.ts";
import type { TunnelRegistry } from "../../src/registry/types.ts";

export const KEY_A = "key-a-0123456789abcdefghijklmnopqrstuv";
export const KEY_B = "key-b-zyxwvutsrqponmlkjihgfedcba987654";

export interface Seen {
  method: string;
  route: string;
  status: number;
  headers: string;
  body: string;
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test convenience
  json: any;
}

export interface CallOptions {
  /** API key sent in X-AzHexGate-ApiKey (undefined = none). */
  key?: string;
  bearer?: string;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

export interface ApiStack {
  url: string;
  relay: EmulatorHandle;
  binding: RelayBinding;
  registry: TunnelRegistry;
  service: TunnelService;
  keys: ApiKeyStore;
  /** Injected clock of the service and the failed-auth limiter. */
  clock: { now: number };
  /** Fault switch: while set, provisioning (and Send tokens) fail like an unreachable relay. */
  relayDown: { on: boolean };
  /** While set, the binding cannot sign Send tokens (the connect route answers 501). */
  sendUnsupported: { on: boolean };
  logs: string[];
  seen: Seen[];
  /** Every listener token handed out (to check none reaches a log line). */
  issuedTokens: string[];
  call(method: string, path: string, o?: CallOptions): Promise<Reply>;
  stop(): Promise<void>;
}

export function routeOf(pathname: string): string {
  if (/^\/api\/tunnels\/[^/]+\/token$/.test(pathname)) return "/api/tunnels/{id}/token";
  if (/^\/api\/tunnels\/[^/]+\/connect$/.test(pathname)) return "/api/tunnels/{id}/connect";
  if (/^\/api\/tunnels\/[^/]+$/.test(pathname)) return "/api/tunnels/{id}";
  if (/^\/api\/names\/[^/]+$/.test(pathname)) return "/api/names/{name}";
  return pathname;
}

export async function startApiStack(
  o: {
    access?: Omit<AccessOptions, "now">;
    service?: Partial<TunnelServiceOptions>;
    registryPath?: string;
    /** OIDC bearer tokens accepted besides the keys. */
    oidc?: import("../../src/api/oidc.ts").OidcVerifier;
    /** A keys file the gateway waits for (loaded while it starts; a missing one leaves the keys unavailable). */
    waitForKeysFile?: string;
  } = {},
): Promise<ApiStack> {
  const relay = await startEmulator();
  const binding = createLocalBinding(relay);
  const registry = openSqliteRegistry(o.registryPath ?? ":memory:");
  const clock = { now: Date.now() };
  const relayDown = { on: false };
  const down = () => Promise.reject(new Error("connect ECONNREFUSED relay (token sig=c2VjcmV0LXNpZw%3D%3D)"));
  const provisioner: Provisioner = {
    ensure: (p) => (relayDown.on ? down() : binding.provisioner.ensure(p)),
    remove: (p) => (relayDown.on ? down() : binding.provisioner.remove(p)),
  };
  const logs: string[] = [];
  const log = createLogger({ format: "json", level: "debug", sink: (line) => logs.push(line) });
  const keys = await loadApiKeys({ env: `${KEY_A},${KEY_B}`, file: o.waitForKeysFile, waitForSources: o.waitForKeysFile !== undefined, retry: { firstMs: 60_000 }, log });
  const access = createAccessPolicy({ ...o.access, now: () => clock.now });
  // Send tokens (`azhexgate connect`): fail like an unreachable relay with relayDown, or absent
  // (a binding that cannot sign them: 501) with sendUnsupported.
  const sendUnsupported = { on: false };
  const issuer = {
    issue: binding.issuer.issue.bind(binding.issuer),
    invalidate: binding.issuer.invalidate.bind(binding.issuer),
    get issueSend() {
      if (sendUnsupported.on) return undefined;
      return (p: string, ttl: number) => (relayDown.on ? down() : binding.issuer.issueSend!(p, ttl));
    },
  };
  const service = new TunnelService({ registry, provisioner, issuer, now: () => clock.now, log, ...o.service });
  const api = createManagementApi({
    service,
    keys,
    oidc: o.oidc,
    access,
    log,
    publicUrl: (id) => `http://${id}.localhost:8080`,
    relayEndpoint: `${relay.endpoint.scheme}://${relay.endpoint.host}`,
    sweepIntervalMs: 0,
  });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    development: false,
    fetch: (req, srv) => api.fetch(req, { address: srv.requestIP(req)?.address ?? "" }),
  });
  const url = `http://127.0.0.1:${server.port}`;
  const seen: Seen[] = [];
  const issuedTokens: string[] = [];

  async function call(method: string, path: string, c: CallOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...c.headers };
    if (c.key !== undefined) headers["x-azhexgate-apikey"] = c.key;
    if (c.bearer !== undefined) headers.authorization = `Bearer ${c.bearer}`;
    let body: string | undefined = c.rawBody;
    if (c.body !== undefined) {
      body = JSON.stringify(c.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(`${url}${path}`, { method, headers, body });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const token = (json as { listener_token?: unknown } | undefined)?.listener_token;
    if (typeof token === "string") issuedTokens.push(token);
    seen.push({
      method,
      route: routeOf(new URL(`${url}${path}`).pathname),
      status: res.status,
      headers: JSON.stringify([...res.headers]),
      body: text,
    });
    return { status: res.status, headers: res.headers, text, json };
  }

  return {
    url,
    relay,
    binding,
    registry,
    service,
    keys,
    clock,
    relayDown,
    sendUnsupported,
    logs,
    seen,
    issuedTokens,
    call,
    async stop() {
      api.stop();
      keys.stop();
      server.stop(true);
      await registry.close().catch(() => {});
      await relay.stop();
    },
  };
}

/**
 * Throws when a response or a log line leaks an API key or a SAS signature. Listener tokens are
 * allowed only in the `listener_token` field of a response (handed to their owner), and Send
 * tokens only in the connect route's `token` field.
 */
export function assertNoSecrets(stack: ApiStack, keys: string[] = [KEY_A, KEY_B]): void {
  const sig = /sig(=|%3D)(?!REDACTED)/i;
  for (const s of stack.seen) {
    let body = s.body;
    try {
      const parsed = JSON.parse(body) as Record<string, unknown>;
      if (parsed && typeof parsed === "object") delete parsed.listener_token;
      if (parsed && typeof parsed === "object" && s.route === "/api/tunnels/{id}/connect") delete parsed.token;
      body = JSON.stringify(parsed);
    } catch {
      /* not JSON: scan as is */
    }
    for (const text of [body, s.headers]) {
      for (const k of keys) if (text.includes(k)) throw new Error(`${s.method} ${s.route} ${s.status} leaks an API key`);
      if (sig.test(text)) throw new Error(`${s.method} ${s.route} ${s.status} leaks a signature outside listener_token`);
    }
  }
  const sigs = stack.issuedTokens.map((t) => /sig=([^&]+)/.exec(t)?.[1]).filter((x): x is string => !!x);
  for (const line of stack.logs) {
    for (const k of keys) if (line.includes(k)) throw new Error(`a log line leaks an API key: ${line.slice(0, 80)}`);
    if (sig.test(line)) throw new Error(`a log line leaks a signature: ${line}`);
    for (const s of sigs) if (line.includes(s) || line.includes(decodeURIComponent(s))) throw new Error("a log line leaks a listener token signature");
  }
}

/**
 * `azhexgate start` behind an HTTP proxy: a real tinyproxy on loopback (its own config and log),
 * a gateway and relay emulator on loopback, the agent as a child process. tinyproxy's own log must
 * show a CONNECT for every relay connection (control channel + one per rendezvous), and requests
 * must round-trip through the tunnel. Also: wss:// with HTTPS_PROXY (TLS inside the tunnel, both
 * the agent and the gateway proxied), --proxy with basic auth, a proxy that refuses (clear error
 * naming the proxy, no password), and NO_PROXY bypassing it. Targets are 127.0.0.1 on purpose:
 * nothing here relies on `localhost` being special.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_KEY, get, killAll, spawnCli, startGatewayChild, startOrigin } from "./support/cli-proc.ts";
import { selfSignedCert } from "./support/relay-probe.ts";
import { startTinyproxy, type Tinyproxy } from "./support/tinyproxy.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  await killAll();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const cwd = () => mkdtempSync(join(tmpdir(), "azhexgate-cli-"));
/** No proxy settings inherited from the machine running the tests. */
const NO_PROXY_ENV = { HTTPS_PROXY: "", https_proxy: "", HTTP_PROXY: "", http_proxy: "", ALL_PROXY: "", all_proxy: "", NO_PROXY: "", no_proxy: "" };

async function tinyproxy(o: Parameters<typeof startTinyproxy>[0]): Promise<Tinyproxy> {
  const p = await startTinyproxy(o);
  cleanups.push(() => p.stop());
  return p;
}

function origin() {
  const o = startOrigin(async (req) => {
    const u = new URL(req.url);
    if (req.method === "POST") return new Response(`echo ${await req.text()}`);
    return new Response(`hello from ${u.pathname}`);
  });
  cleanups.push(() => o.stop(true));
  return o;
}

/** The relay endpoint a gateway hands to agents (claim a tunnel, read it, delete the tunnel). */
async function relayPortOf(apiUrl: string): Promise<number> {
  const h = { "x-azhexgate-apikey": API_KEY, "content-type": "application/json" };
  const res = await fetch(`${apiUrl}/api/tunnels`, { method: "POST", headers: h, body: "{}", proxy: false });
  const v = (await res.json()) as { id: string; relay_endpoint: string };
  await fetch(`${apiUrl}/api/tunnels/${v.id}`, { method: "DELETE", headers: h, proxy: false });
  return Number(new URL(v.relay_endpoint).port);
}

/** Open HC sessions of the gateway's tunnels (Prometheus gauge). */
async function sessionsOf(gatewayUrl: string): Promise<number> {
  const text = await (await fetch(`${gatewayUrl}/metrics`, { proxy: false })).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith("azhexgate_tunnel_sessions"))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
}

async function roundTrips(publicUrl: string): Promise<void> {
  const a = await get(`${publicUrl}/one`, 10_000);
  expect(await a.text()).toBe("hello from /one");
  const b = await get(`${publicUrl}/two`, 10_000, { method: "POST", body: "through the proxy" });
  expect(await b.text()).toBe("echo through the proxy");
}

describe("azhexgate start behind an HTTP proxy (real tinyproxy)", () => {
  test("HTTP_PROXY + ws:// relay: every relay connection is a CONNECT in tinyproxy's log; requests round-trip", async () => {
    const gw = await startGatewayChild();
    const relayPort = await relayPortOf(gw.apiUrl);
    const tp = await tinyproxy({ connectPorts: [relayPort] });
    const app = origin();
    const cli = spawnCli(["start", "--port", String(app.port), "--api-url", gw.apiUrl, "--json"], {
      env: { ...NO_PROXY_ENV, AZHEXGATE_API_KEY: API_KEY, HTTP_PROXY: tp.url },
      cwd: cwd(),
    });
    const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
    await roundTrips(String(ready.public_url));
    const connects = tp.connects();
    const sessions = await sessionsOf(`http://127.0.0.1:${gw.port}`);
    expect(sessions).toBeGreaterThanOrEqual(1);
    // the control channel + one rendezvous per session, all to the relay, all through the proxy
    expect(connects.length).toBeGreaterThanOrEqual(1 + sessions);
    expect(new Set(connects)).toEqual(new Set([`127.0.0.1:${relayPort}`]));
    // the management API calls (plain http) went through it too
    expect(tp.requests().some((r) => r.startsWith(`POST ${gw.apiUrl}/api/tunnels`))).toBe(true);
    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
  });

  test("HTTPS_PROXY + wss:// relay: TLS inside the CONNECT tunnel, agent and gateway both proxied", async () => {
    const dir = mkdtempSync(join(tmpdir(), "azhexgate-tls-"));
    const { cert, key } = selfSignedCert();
    writeFileSync(join(dir, "cert.pem"), cert);
    writeFileSync(join(dir, "key.pem"), key);
    // tinyproxy first, on a port the gateway child can be told about before it dials
    const tp = await tinyproxy({ connectPorts: [] }); // no ConnectPort line: tinyproxy allows every port
    const gwProc = Bun.spawn(["bun", new URL("./support/tls-gateway.ts", import.meta.url).pathname], {
      env: {
        ...process.env,
        ...NO_PROXY_ENV,
        TLS_CERT_FILE: join(dir, "cert.pem"),
        TLS_KEY_FILE: join(dir, "key.pem"),
        NODE_EXTRA_CA_CERTS: join(dir, "cert.pem"),
        AZHEXGATE_API_KEYS: API_KEY,
        GATEWAY_USE_PROXY: "1",
        HTTPS_PROXY: tp.url,
      },
      stdout: "pipe",
      stderr: "inherit",
    });
    cleanups.push(async () => {
      gwProc.kill("SIGKILL");
      await gwProc.exited;
    });
    const reader = gwProc.stdout.getReader();
    let first = "";
    const deadline = Date.now() + 20_000;
    while (!first.includes("\n") && Date.now() < deadline) {
      const r = await Promise.race([reader.read(), Bun.sleep(20_000).then(() => ({ done: true, value: undefined }))]);
      if (r.done) break;
      first += new TextDecoder().decode(r.value);
    }
    reader.releaseLock();
    const gw = JSON.parse(first.split("\n")[0]!) as { api_url: string; relay_port: number; gateway_port: number };
    const app = origin();
    const cli = spawnCli(["start", "--port", String(app.port), "--api-url", gw.api_url, "--json"], {
      env: { ...NO_PROXY_ENV, AZHEXGATE_API_KEY: API_KEY, HTTPS_PROXY: tp.url, NODE_EXTRA_CA_CERTS: join(dir, "cert.pem") },
      cwd: cwd(),
    });
    const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
    await roundTrips(String(ready.public_url));
    const connects = tp.connects();
    const sessions = await sessionsOf(`http://127.0.0.1:${gw.gateway_port}`);
    expect(sessions).toBeGreaterThanOrEqual(1);
    // agent: control channel + one rendezvous per session; gateway: one sender per session
    expect(connects.length).toBeGreaterThanOrEqual(1 + 2 * sessions);
    expect(new Set(connects)).toEqual(new Set([`127.0.0.1:${gw.relay_port}`]));
    // the proxy carried TLS: no plain WebSocket upgrade ever appeared in its log
    expect(tp.log()).not.toContain("$hc");
    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
  });

  test("--proxy with basic auth: credentials used, never printed; a wrong password is a clear error", async () => {
    const gw = await startGatewayChild();
    const relayPort = await relayPortOf(gw.apiUrl);
    const tp = await tinyproxy({ connectPorts: [relayPort], basicAuth: { user: "dev", password: "pr0xy-pa55" } });
    const app = origin();
    const proxyUrl = `http://dev:pr0xy-pa55@127.0.0.1:${tp.port}`;
    const cli = spawnCli(["start", "--port", String(app.port), "--api-url", gw.apiUrl, "--json", "--proxy", proxyUrl], {
      env: { ...NO_PROXY_ENV, AZHEXGATE_API_KEY: API_KEY },
      cwd: cwd(),
    });
    const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
    await roundTrips(String(ready.public_url));
    expect(tp.connects().length).toBeGreaterThanOrEqual(2);
    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
    expect(cli.text().out + cli.text().err).not.toContain("pr0xy-pa55");

    // the API goes direct (NO_PROXY names its host) so only the relay meets the wrong password
    const bad = spawnCli(["start", "--port", String(app.port), "--api-url", gw.apiUrl, "--json", "--exit-on-fail", "--proxy", `http://dev:wrong-pa55@127.0.0.1:${tp.port}`], {
      env: { ...NO_PROXY_ENV, AZHEXGATE_API_KEY: API_KEY, NO_PROXY: "localhost" },
      cwd: cwd(),
    });
    expect(await bad.exit(30_000)).toBe(1);
    const err = bad.events().find((e) => e.event === "error");
    expect(err).toMatchObject({ code: "proxy_refused" });
    expect(String(err?.message)).toMatch(new RegExp(`^proxy http://\\*\\*\\*@127\\.0\\.0\\.1:${tp.port} refused CONNECT 127\\.0\\.0\\.1:${relayPort}: 40[17] `));
    expect(bad.text().out + bad.text().err).not.toContain("wrong-pa55");
  });

  test("a proxy that refuses the relay's port: the state events name the proxy and the 403, and it keeps retrying", async () => {
    const gw = await startGatewayChild();
    const tp = await tinyproxy({ connectPorts: [443] }); // tinyproxy's default: the relay's port is not allowed
    const app = origin();
    const cli = spawnCli(["start", "--port", String(app.port), "--api-url", gw.apiUrl, "--json"], {
      env: { ...NO_PROXY_ENV, AZHEXGATE_API_KEY: API_KEY, HTTP_PROXY: tp.url, NO_PROXY: "localhost" },
      cwd: cwd(),
    });
    const s = await cli.waitEvent((e) => e.event === "state" && e.state === "reconnecting", 20_000);
    expect(s.code).toBe("proxy_refused");
    expect(String(s.reason)).toMatch(new RegExp(`^proxy http://127\\.0\\.0\\.1:${tp.port} refused CONNECT 127\\.0\\.0\\.1:\\d+: 403 .*does not allow this destination`));
    expect(cli.events().some((e) => e.event === "ready")).toBe(false);
    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
  });

  test("NO_PROXY bypasses the proxy: nothing reaches tinyproxy, the tunnel works", async () => {
    const gw = await startGatewayChild();
    const tp = await tinyproxy({ connectPorts: [] });
    const app = origin();
    const cli = spawnCli(["start", "--port", String(app.port), "--api-url", gw.apiUrl, "--json"], {
      env: { ...NO_PROXY_ENV, AZHEXGATE_API_KEY: API_KEY, HTTP_PROXY: tp.url, HTTPS_PROXY: tp.url, NO_PROXY: "localhost,127.0.0.1" },
      cwd: cwd(),
    });
    const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
    await roundTrips(String(ready.public_url));
    expect(tp.connects()).toEqual([]);
    expect(tp.requests()).toEqual([]);
    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
  });

  test("a proxy URL that cannot work is a usage error naming the variable, without its password", async () => {
    const gw = await startGatewayChild();
    const cli = spawnCli(["start", "--port", "3000", "--api-url", gw.apiUrl], {
      env: { ...NO_PROXY_ENV, AZHEXGATE_API_KEY: API_KEY, HTTPS_PROXY: "socks5://me:hunter2@127.0.0.1:1080" },
      cwd: cwd(),
    });
    expect(await cli.exit()).toBe(2);
    expect(cli.text().err).toContain("azhexgate start: HTTPS_PROXY uses socks5:// (got \"socks5://***@127.0.0.1:1080\"); only http:// proxies are supported");
    expect(cli.text().err).not.toContain("hunter2");
    const embedded = spawnCli(["start", "--port", "3000", "--proxy", "http://127.0.0.1:3128"], { env: NO_PROXY_ENV, cwd: cwd() });
    expect(await embedded.exit()).toBe(2);
    expect(embedded.text().err).toContain("--proxy applies to a deployed gateway");
  });
});

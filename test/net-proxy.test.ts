/**
 * HTTP proxy support below the CLI: the routing rules (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY /
 * NO_PROXY, upper case before lower case, --proxy first) and our WebSocket client dialing through
 * a real tinyproxy: ws:// inside a CONNECT tunnel, wss:// with TLS run inside the tunnel, proxy
 * basic auth, and the proxy that says no (clear error naming the proxy, never its password).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { noProxyMatcher, parseProxyUrl, ProxyConfigError, proxyRouting, redactProxyUrl, setProcessProxy } from "../src/net/proxy.ts";
import { ApiClientError, createApiClient } from "../src/agent/api-client.ts";
import { classify } from "../src/agent/policy.ts";
import { ProxyError } from "../src/net/proxy-dial.ts";
import { connectSender } from "../src/hc/sender.ts";
import { RelayError } from "../src/hc/errors.ts";
import { connectWebSocket } from "../src/ws/connect.ts";
import { selfSignedCert } from "./support/relay-probe.ts";
import { startTinyproxy, type Tinyproxy } from "./support/tinyproxy.ts";
import { startEmulator } from "../src/emulator/server.ts";
import { sasTokenProvider } from "../src/hc/tokens.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("proxy routing (pure)", () => {
  test("secure targets: HTTPS_PROXY, else ALL_PROXY, else HTTP_PROXY; upper case before lower case", () => {
    const r = (env: Record<string, string>) => proxyRouting({ env }).forUrl("wss://ns.servicebus.windows.net/$hc/x")?.display;
    expect(r({ HTTPS_PROXY: "http://a:1", ALL_PROXY: "http://b:2", HTTP_PROXY: "http://c:3" })).toBe("http://a:1");
    expect(r({ ALL_PROXY: "http://b:2", HTTP_PROXY: "http://c:3" })).toBe("http://b:2");
    expect(r({ HTTP_PROXY: "http://c:3" })).toBe("http://c:3");
    expect(r({ https_proxy: "http://lower:1" })).toBe("http://lower:1");
    expect(r({ HTTPS_PROXY: "http://upper:1", https_proxy: "http://lower:1" })).toBe("http://upper:1");
    expect(r({ HTTPS_PROXY: "", https_proxy: "http://lower:1" })).toBe("http://lower:1"); // empty = unset
    expect(r({})).toBeUndefined();
  });

  test("plain targets (ws://, http://) never use HTTPS_PROXY", () => {
    const r = (env: Record<string, string>) => proxyRouting({ env }).forUrl("ws://127.0.0.1:9000/$hc/x")?.display;
    expect(r({ HTTPS_PROXY: "http://a:1" })).toBeUndefined();
    expect(r({ HTTPS_PROXY: "http://a:1", HTTP_PROXY: "http://c:3" })).toBe("http://c:3");
    expect(r({ ALL_PROXY: "http://b:2" })).toBe("http://b:2");
    expect(proxyRouting({ env: { http_proxy: "http://c:3" } }).forUrl("http://example.com/api")?.display).toBe("http://c:3");
  });

  test("--proxy beats the environment for every scheme, and NO_PROXY still applies", () => {
    const r = proxyRouting({ env: { HTTPS_PROXY: "http://env:1", NO_PROXY: "internal.example" }, flag: "http://flag:8080" });
    expect(r.forUrl("wss://x.servicebus.windows.net/")?.display).toBe("http://flag:8080");
    expect(r.forUrl("ws://127.0.0.1:9/")?.display).toBe("http://flag:8080");
    expect(r.forUrl("https://api.internal.example/")).toBeUndefined();
    expect(r.forUrl("wss://x.servicebus.windows.net/")?.source).toBe("--proxy");
  });

  test("NO_PROXY: *, domains and subdomains, leading dot / *., IPs, IPv4 blocks, host:port", () => {
    const m = noProxyMatcher(" example.com, .corp.local ,*.svc  10.0.0.0/8 127.0.0.1 [::1] api.test:8443");
    expect(m("example.com", 443)).toBe(true);
    expect(m("a.b.example.com", 443)).toBe(true);
    expect(m("notexample.com", 443)).toBe(false);
    expect(m("corp.local", 80)).toBe(true);
    expect(m("x.corp.local", 80)).toBe(true);
    expect(m("a.svc", 80)).toBe(true);
    expect(m("10.1.2.3", 80)).toBe(true);
    expect(m("11.1.2.3", 80)).toBe(false);
    expect(m("127.0.0.1", 5)).toBe(true);
    expect(m("127.0.0.2", 5)).toBe(false);
    expect(m("[::1]", 5)).toBe(true);
    expect(m("api.test", 8443)).toBe(true);
    expect(m("api.test", 443)).toBe(false);
    expect(m("localhost", 80)).toBe(false);
    expect(noProxyMatcher("*")("anything.at.all", 1)).toBe(true);
    expect(noProxyMatcher("")("example.com", 1)).toBe(false);
    // upper case first, like the SDK
    expect(proxyRouting({ env: { HTTPS_PROXY: "http://p:1", NO_PROXY: "a.test", no_proxy: "b.test" } }).forUrl("https://b.test/")).toBeDefined();
  });

  test("proxy URLs: bare host:port, credentials become Basic auth and never show, https:// and socks refused", () => {
    const p = parseProxyUrl("http://us%40er:p%3Ass@proxy.corp:3128", "HTTPS_PROXY");
    expect(p.hostname).toBe("proxy.corp");
    expect(p.port).toBe(3128);
    expect(p.authorization).toBe(`Basic ${Buffer.from("us@er:p:ss").toString("base64")}`);
    expect(p.display).toBe("http://***@proxy.corp:3128");
    expect(JSON.stringify(p)).not.toContain("p%3Ass");
    expect(JSON.stringify(p)).not.toContain("Basic");
    expect(Bun.inspect(p)).not.toContain("p%3Ass");
    expect(Bun.inspect(p)).not.toContain("Basic");
    expect(`${p}`).toBe("http://***@proxy.corp:3128");
    expect(parseProxyUrl("proxy.corp:8080", "HTTP_PROXY").display).toBe("http://proxy.corp:8080");
    expect(parseProxyUrl("http://proxy.corp", "HTTP_PROXY").port).toBe(80);
    expect(() => parseProxyUrl("socks5://u:secret@p:1080", "ALL_PROXY")).toThrow(ProxyConfigError);
    expect(() => parseProxyUrl("socks5://u:secret@p:1080", "ALL_PROXY")).toThrow(/^ALL_PROXY uses socks5:\/\/ .*only http:\/\/ proxies/);
    try {
      parseProxyUrl("https://u:secret@p:1080", "--proxy");
    } catch (e) {
      expect((e as Error).message).not.toContain("secret");
    }
    expect(redactProxyUrl("see http://alice:pw@h:1 and http://h:2")).toBe("see http://***@h:1 and http://h:2");
    expect(proxyRouting({ env: { HTTPS_PROXY: "http://a:pw@h:1", NO_PROXY: "x" } }).describe()).toBe("wss/https via http://***@h:1 (HTTPS_PROXY); NO_PROXY=x");
  });
});

function echoServer(tls?: { cert: string; key: string }) {
  const s = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls,
    fetch: (req, srv) => (srv.upgrade(req, { data: undefined }) ? undefined : new Response("no", { status: 400 })),
    websocket: { message: (ws, m) => void ws.send(m) },
  });
  cleanups.push(() => s.stop(true));
  return s;
}

async function proxy(o: Parameters<typeof startTinyproxy>[0]): Promise<Tinyproxy> {
  const p = await startTinyproxy(o);
  cleanups.push(() => p.stop());
  return p;
}

async function echoOnce(ws: Awaited<ReturnType<typeof connectWebSocket>>, data: string | Uint8Array): Promise<string | Uint8Array> {
  const got = new Promise<string | Uint8Array>((r) => ws.once("message", (d) => r(d)));
  ws.send(data);
  return got;
}

describe("WebSocket client through a real tinyproxy", () => {
  test("ws:// inside a CONNECT tunnel: messages both ways, the proxy's log shows the CONNECT", async () => {
    const srv = echoServer();
    const tp = await proxy({ connectPorts: [srv.port!] });
    const ws = await connectWebSocket(`ws://127.0.0.1:${srv.port}/x`, { proxy: parseProxyUrl(tp.url, "test") });
    expect(await echoOnce(ws, "hello")).toBe("hello");
    const big = new Uint8Array(1_000_000).fill(5);
    expect(((await echoOnce(ws, big)) as Uint8Array).byteLength).toBe(1_000_000);
    ws.close();
    expect(tp.connects()).toEqual([`127.0.0.1:${srv.port}`]);
  });

  test("wss:// runs TLS inside the tunnel (certificate checked against the target), and an untrusted one fails", async () => {
    const { cert, key } = selfSignedCert();
    const srv = echoServer({ cert, key });
    const tp = await proxy({ connectPorts: [srv.port!] });
    const p = parseProxyUrl(tp.url, "HTTPS_PROXY");
    const ws = await connectWebSocket(`wss://127.0.0.1:${srv.port}/`, { proxy: p, tls: { ca: cert } });
    expect(await echoOnce(ws, "over tls")).toBe("over tls");
    const big = new Uint8Array(2_000_000).map((_, i) => i & 0xff);
    const back = (await echoOnce(ws, big)) as Uint8Array;
    expect(Buffer.from(back).equals(Buffer.from(big))).toBe(true); // backpressure both ways inside TLS inside CONNECT
    ws.close();
    const untrusted = await connectWebSocket(`wss://127.0.0.1:${srv.port}/`, { proxy: p }).catch((e: unknown) => e);
    expect(untrusted).toBeInstanceOf(ProxyError);
    expect((untrusted as ProxyError).kind).toBe("tls");
    expect((untrusted as Error).message).toContain(`TLS to 127.0.0.1:${srv.port} through proxy ${tp.url} failed`);
    expect(tp.connects()).toEqual([`127.0.0.1:${srv.port}`, `127.0.0.1:${srv.port}`]);
  });

  test("proxy basic auth: right credentials pass, none or wrong get 407 named clearly, password never shown", async () => {
    const srv = echoServer();
    const tp = await proxy({ connectPorts: [srv.port!], basicAuth: { user: "alice", password: "s3cret-pw" } });
    const good = await connectWebSocket(`ws://127.0.0.1:${srv.port}/`, { proxy: parseProxyUrl(`http://alice:s3cret-pw@127.0.0.1:${tp.port}`, "--proxy") });
    expect(await echoOnce(good, "authed")).toBe("authed");
    good.close();
    const none = (await connectWebSocket(`ws://127.0.0.1:${srv.port}/`, { proxy: parseProxyUrl(tp.url, "--proxy") }).catch((e: unknown) => e)) as ProxyError;
    expect(none).toBeInstanceOf(ProxyError);
    expect([none.kind, none.status, none.retryable]).toEqual(["refused", 407, false]);
    expect(none.message).toMatch(new RegExp(`^proxy http://127\\.0\\.0\\.1:${tp.port} refused CONNECT 127\\.0\\.0\\.1:${srv.port}: 407 .*wants a user and password`));
    const wrong = (await connectWebSocket(`ws://127.0.0.1:${srv.port}/`, { proxy: parseProxyUrl(`http://alice:bad-pw@127.0.0.1:${tp.port}`, "--proxy") }).catch((e: unknown) => e)) as ProxyError;
    expect([401, 407]).toContain(wrong.status!); // tinyproxy says 401 to wrong credentials
    expect(wrong.retryable).toBe(false);
    expect(wrong.message).toContain(`proxy http://***@127.0.0.1:${tp.port} refused`);
    expect(wrong.message).not.toContain("bad-pw");
    expect(wrong.message).toContain("did not accept the user and password");
  });

  test("a proxy that refuses the port (403), and one that is not there: clear, typed errors through the HC sender", async () => {
    const emu = await startEmulator({ hybridConnections: [{ path: "hc" }] });
    cleanups.push(() => emu.stop());
    const key = emu.entities.namespaceRules.get("RootManageSharedAccessKey")!.primaryKey;
    const tp = await proxy({ connectPorts: [1] }); // CONNECT allowed to port 1 only
    const denied = await connectSender({
      endpoint: emu.endpoint,
      hcPath: "hc",
      token: sasTokenProvider("RootManageSharedAccessKey", key),
      proxy: parseProxyUrl(tp.url, "HTTP_PROXY"),
    }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(RelayError);
    const d = denied as RelayError;
    expect([d.code, d.status, d.retryable]).toEqual(["proxy_refused", 403, false]);
    expect(d.message).toContain(`proxy http://127.0.0.1:${tp.port} refused CONNECT 127.0.0.1:${emu.port}: 403`);
    expect(d.message).toContain("does not allow this destination");
    expect(tp.connects()).toEqual([`127.0.0.1:${emu.port}`]);
    // the agent's policy: the same again (no re-claim), and with --exit-on-fail a 403 from the proxy is final
    expect(classify(d, "none")).toEqual({ fix: "none", permanent: true, code: "proxy_refused" });

    const gone = parseProxyUrl(`http://u:pw@127.0.0.1:${tp.port}`, "HTTPS_PROXY");
    await tp.stop();
    const unreachable = (await connectSender({ endpoint: emu.endpoint, hcPath: "hc", proxy: gone }).catch((e: unknown) => e)) as RelayError;
    expect([unreachable.code, unreachable.retryable]).toEqual(["proxy_unreachable", true]);
    expect(unreachable.message).toContain(`cannot reach proxy http://***@127.0.0.1:${tp.port} (HTTPS_PROXY)`);
    expect(unreachable.message).not.toContain("pw");
    expect(classify(unreachable, "none")).toEqual({ fix: "none", permanent: false, code: "proxy_unreachable" });
  });
});

describe("proxies that misbehave (raw sockets playing the proxy)", () => {
  test("silent after CONNECT: the handshake timeout applies and the socket is closed; garbage: a protocol ProxyError", async () => {
    let closed = 0;
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {}, close: () => void closed++ } });
    cleanups.push(() => silent.stop(true));
    const t0 = Date.now();
    const e = (await connectWebSocket("ws://127.0.0.1:9/", { proxy: parseProxyUrl(`127.0.0.1:${silent.port}`, "test"), timeoutMs: 300 }).catch((x: unknown) => x)) as Error;
    expect(e.name).toBe("WsConnectError");
    expect(e.message).toContain("timed out");
    expect(Date.now() - t0).toBeLessThan(5000);
    for (let i = 0; i < 50 && closed === 0; i++) await Bun.sleep(20);
    expect(closed).toBe(1);

    const garbage = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (s) => void s.write("SSH-2.0-OpenSSH\r\n\r\n") } });
    cleanups.push(() => garbage.stop(true));
    const g = (await connectWebSocket("ws://127.0.0.1:9/", { proxy: parseProxyUrl(`127.0.0.1:${garbage.port}`, "test") }).catch((x: unknown) => x)) as ProxyError;
    expect(g).toBeInstanceOf(ProxyError);
    expect(g.kind).toBe("protocol");
    expect(g.message).toContain('with something that is not HTTP: "SSH-2.0-OpenSSH"');
  });
});

describe("management API calls through the process's proxy (Bun fetch with an explicit proxy)", () => {
  test("a proxy refusing CONNECT to the API is proxy_refused naming the proxy; an unreachable one names it too, no password", async () => {
    const tp = await proxy({ connectPorts: [1] });
    try {
      setProcessProxy(proxyRouting({ env: { HTTPS_PROXY: tp.url } }));
      const refused = (await createApiClient({ apiUrl: "https://127.0.0.1:8443", apiKey: "k".repeat(32) }).create({}).catch((e: unknown) => e)) as ApiClientError;
      expect(refused).toBeInstanceOf(ApiClientError);
      expect([refused.code, refused.status, refused.retryable]).toEqual(["proxy_refused", 403, false]);
      expect(refused.message).toBe(`Proxy ${tp.url} (HTTPS_PROXY) refused to reach the management API at https://127.0.0.1:8443: 403. Check the proxy URL and its credentials, or list the host in NO_PROXY.`);
      expect(tp.connects()).toEqual(["127.0.0.1:8443"]);

      setProcessProxy(proxyRouting({ env: { HTTP_PROXY: "http://me:secret-pw@127.0.0.1:1" } }));
      const gone = (await createApiClient({ apiUrl: "http://127.0.0.1:9", apiKey: "k".repeat(32) }).create({}).catch((e: unknown) => e)) as ApiClientError;
      expect([gone.code, gone.retryable]).toEqual(["api_unreachable", true]);
      expect(gone.message).toContain("Cannot reach the management API at http://127.0.0.1:9 through proxy http://***@127.0.0.1:1 (HTTP_PROXY)");
      expect(gone.message).not.toContain("secret-pw");
    } finally {
      setProcessProxy(undefined);
    }
  });
});

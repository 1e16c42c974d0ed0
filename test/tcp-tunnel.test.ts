/**
 * TCP tunnels end to end (issue 16) with real processes: a gateway child (API + relay emulator),
 * `azhexgate tcp` serving a real TCP service, `azhexgate connect` reaching it on a local port.
 * Half-close, a target that is down, a serving agent killed mid-connection, authorization (403),
 * unknown names and bad flags.
 */
import { afterEach, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import type { Socket } from "bun";
import { API_KEY, freePort, killAll, spawnCli, startGatewayChild, type Child } from "./support/cli-proc.ts";

const KEY_B = "cli-test-key-b-9876543210fedcba";

afterEach(() => killAll());

/** A gateway child that accepts two keys (the owner's and another). */
function gateway() {
  return startGatewayChild({ env: { AZHEXGATE_API_KEYS: `${API_KEY},${KEY_B}` } });
}

/** `azhexgate tcp` for `port`; resolves with its ready event (the tunnel's name). */
async function serve(apiUrl: string, port: number, extra: string[] = []): Promise<{ child: Child; name: string }> {
  const child = spawnCli(["tcp", "--port", String(port), "--host", "127.0.0.1", "--json", ...extra], { env: { AZHEXGATE_API_URL: apiUrl, AZHEXGATE_API_KEY: API_KEY } });
  const ready = await child.waitEvent((e) => e.event === "ready", 20_000);
  expect(ready.local_url).toBe(`tcp://127.0.0.1:${port}`);
  return { child, name: ready.name as string };
}

/** `azhexgate connect NAME --port 0 --json`; resolves with the local port it listens on. */
async function connect(apiUrl: string, name: string, key = API_KEY): Promise<{ child: Child; port: number }> {
  const child = spawnCli(["connect", name, "--port", "0", "--json"], { env: { AZHEXGATE_API_URL: apiUrl, AZHEXGATE_API_KEY: key } });
  const ready = await child.waitEvent((e) => e.event === "ready", 20_000);
  return { child, port: Number(String(ready.listen).split(":").pop()) };
}

/**
 * A TCP service that reads until the client's FIN, then answers with the byte count, the SHA-256
 * of what it got and `tail` bytes of 'x' (a long answer after the client shut its write side).
 */
function halfCloseServer(tail: number) {
  return Bun.listen<{ h: ReturnType<typeof createHash>; n: number }>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open: (s) => void (s.data = { h: createHash("sha256"), n: 0 }),
      data(s, d) {
        s.data.h.update(d);
        s.data.n += d.length;
      },
      async end(s) {
        const head = new TextEncoder().encode(`${s.data.n} ${s.data.h.digest("hex")}\n`);
        const body = new Uint8Array(head.length + tail).fill(120);
        body.set(head);
        let off = 0;
        while (off < body.length) {
          off += Math.max(0, s.write(body.subarray(off)));
          if (off < body.length) await Bun.sleep(2);
        }
        s.end();
      },
    },
  });
}

/** Connects to 127.0.0.1:port, sends `payload`, shuts the write side, collects everything until close. */
function exchange(port: number, payload: Uint8Array, timeoutMs = 30_000): Promise<{ bytes: Uint8Array; reset: boolean }> {
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = [];
    const timer = setTimeout(() => reject(new Error("exchange timed out (hang)")), timeoutMs);
    const done = (reset: boolean) => {
      clearTimeout(timer);
      resolve({ bytes: Buffer.concat(parts), reset });
    };
    let off = 0;
    const pump = (s: Socket) => {
      while (off < payload.length) {
        const n = s.write(payload.subarray(off));
        if (n <= 0) return;
        off += n;
      }
      s.shutdown();
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        open: (s) => pump(s),
        drain: (s) => pump(s),
        data: (_s, d) => void parts.push(new Uint8Array(d)),
        end: (s) => void s.end(),
        close: (_s, err) => done(err !== undefined),
        error: () => done(true),
      },
    }).catch(reject);
  });
}

test("bytes both ways with half-close: the client shuts its write side and still gets the whole answer", async () => {
  const gw = await gateway();
  const svc = halfCloseServer(3 * 1024 * 1024);
  try {
    const s = await serve(gw.apiUrl, svc.port);
    const c = await connect(gw.apiUrl, s.name);
    const payload = new Uint8Array(5 * 1024 * 1024 + 7).map((_, i) => (i * 31) & 0xff);
    const sha = createHash("sha256").update(payload).digest("hex");
    const got = await exchange(c.port, payload);
    const text = new TextDecoder().decode(got.bytes.subarray(0, 200));
    expect(text.split("\n")[0]).toBe(`${payload.length} ${sha}`);
    expect(got.bytes.length).toBe(`${payload.length} ${sha}\n`.length + 3 * 1024 * 1024);
    // several connections at once, multiplexed
    const many = await Promise.all(Array.from({ length: 8 }, (_, i) => exchange(c.port, new TextEncoder().encode(`hello ${i}`))));
    for (const [i, m] of many.entries()) expect(new TextDecoder().decode(m.bytes).split("\n")[0]).toBe(`${`hello ${i}`.length} ${createHash("sha256").update(`hello ${i}`).digest("hex")}`);
  } finally {
    svc.stop(true);
  }
}, 120_000);

test("the serving side's target is down: the connection is reset and connect says so on stderr", async () => {
  const gw = await gateway();
  const port = freePort();
  const s = await serve(gw.apiUrl, port);
  const c = await connect(gw.apiUrl, s.name);
  const got = await exchange(c.port, new TextEncoder().encode("PING\r\n"));
  expect(got.bytes.length).toBe(0);
  const line = await c.child.waitErr(/connection refused/, 10_000);
  expect(line).toContain(`connection refused by 127.0.0.1:${port} on the serving side`);
}, 60_000);

test("the serving agent killed mid-connection: the connection is reset, never hangs; after a restart a new one works", async () => {
  const gw = await gateway();
  const svc = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (s, d) => void s.write(d) } }); // echo, never ends
  try {
    const s = await serve(gw.apiUrl, svc.port, ["--name", "kill-test"]);
    const c = await connect(gw.apiUrl, s.name);
    const closed = new Promise<string>((resolve) => {
      let seen = "";
      void Bun.connect({
        hostname: "127.0.0.1",
        port: c.port,
        socket: {
          open: (sock) => void sock.write("hello"),
          data: (_s, d) => {
            seen += new TextDecoder().decode(d);
            if (seen === "hello") s.child.kill("SIGKILL");
          },
          close: () => resolve(seen),
          error: () => resolve(seen),
        },
      });
    });
    const seen = await Promise.race([closed, Bun.sleep(45_000).then(() => "hung")]);
    expect(seen).toBe("hello"); // echoed, then closed (not hung)
    const again = await serve(gw.apiUrl, svc.port, ["--name", "kill-test"]);
    expect(again.name).toBe("kill-test");
    const t0 = Date.now();
    let ok = "";
    while (Date.now() - t0 < 10_000 && ok !== "again") {
      ok = await echoOnce(c.port, "again");
      if (ok !== "again") await Bun.sleep(500);
    }
    expect(ok).toBe("again");
  } finally {
    svc.stop(true);
  }
}, 120_000);

test("authorization: another key gets 403 unless allowed; unknown names 404; bad flags exit 2", async () => {
  const gw = await gateway();
  const s = await serve(gw.apiUrl, freePort());
  const other = spawnCli(["connect", s.name, "--port", "0"], { env: { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: KEY_B } });
  expect(await other.exit(20_000)).toBe(3);
  const msg = other.text().err;
  expect(msg).toContain("Not authorized (403)");
  const keyId = /--allow (\S+)/.exec(msg)![1]!;
  const list = spawnCli(["tunnels", "list"], { env: { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY } });
  expect(await list.exit(20_000)).toBe(0);
  expect(list.text().out).toContain(`tcp: azhexgate connect ${s.name}`);
  const res = await fetch(`${gw.apiUrl}/api/tunnels/${s.name}/connect`, { method: "POST", headers: { "x-azhexgate-apikey": KEY_B } });
  expect(res.status).toBe(403);
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe("connect_forbidden");

  // allowed by the owner: the same key now connects
  const svc = halfCloseServer(0);
  try {
    const allowed = await serve(gw.apiUrl, svc.port, ["--allow", keyId]);
    const c = await connect(gw.apiUrl, allowed.name, KEY_B);
    const got = await exchange(c.port, new TextEncoder().encode("hi"));
    expect(new TextDecoder().decode(got.bytes)).toStartWith("2 ");
  } finally {
    svc.stop(true);
  }

  const unknown = spawnCli(["connect", "no-such-tunnel", "--port", "0"], { env: { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY } });
  expect(await unknown.exit(20_000)).toBe(1);
  expect(unknown.text().err).toContain('No tunnel named "no-such-tunnel" (404)');

  const noApi = spawnCli(["tcp", "--port", "5432"]);
  expect(await noApi.exit(20_000)).toBe(2);
  expect(noApi.text().err).toContain("--api-url (or AZHEXGATE_API_URL) is required");
  for (const bad of [["connect", "x1", "--port", "1", "--stdio"], ["connect", "--port", "1"], ["connect", "x1", "--port", "nope"], ["tcp"], ["tcp", "--port", "1", "--bogus"]]) {
    const p = spawnCli(bad, { env: { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY } });
    expect(await p.exit(20_000)).toBe(2);
  }
}, 120_000);

/** An echo exchange on a fresh connection to 127.0.0.1:port; resolves with what came back. */
function echoOnce(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const timer = setTimeout(() => resolve(`timeout: ${got}`), 10_000);
    void Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (s) => void s.write(text),
        data: (s, d) => {
          got += new TextDecoder().decode(d);
          if (got.length >= text.length) {
            clearTimeout(timer);
            s.end();
            resolve(got);
          }
        },
        close: () => resolve(got),
      },
    }).catch((e) => resolve(`error: ${e}`));
  });
}

test("token renewal: Send tokens of 5 s expire several times; a long connection keeps working and new ones get new sessions", async () => {
  const gw = await startGatewayChild({ tokenTtl: 20, env: { AZHEXGATE_API_KEYS: API_KEY } }); // Send tokens live 20 / 4 = 5 s
  const svc = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (s, d) => void s.write(d) } });
  try {
    const s = await serve(gw.apiUrl, svc.port);
    const c = await connect(gw.apiUrl, s.name);
    let echoed = "";
    const long = await Bun.connect({ hostname: "127.0.0.1", port: c.port, socket: { data: (_s, d) => void (echoed += new TextDecoder().decode(d)) } });
    for (let i = 0; i < 13; i++) {
      long.write(`${i};`);
      if (i % 4 === 3) expect(await echoOnce(c.port, `fresh ${i}`)).toBe(`fresh ${i}`);
      await Bun.sleep(1000);
    }
    expect(echoed).toBe(Array.from({ length: 13 }, (_, i) => `${i};`).join(""));
    long.end();
    expect(c.child.text().err).toBe("");
  } finally {
    svc.stop(true);
  }
}, 120_000);

test("an offline tunnel (nobody serving it): connect --stdio exits 1 and --port closes each connection, saying so", async () => {
  const gw = await gateway();
  const created = (await fetch(`${gw.apiUrl}/api/tunnels`, {
    method: "POST",
    headers: { "x-azhexgate-apikey": API_KEY, "content-type": "application/json" },
    body: JSON.stringify({ kind: "tcp", subdomain: "nobody-home" }),
  }).then((r) => r.json())) as { id: string; public_url: string };
  const env = { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY };
  const stdio = spawnCli(["connect", created.id, "--stdio"], { env });
  expect(await stdio.exit(30_000)).toBe(1);
  expect(stdio.text().err).toContain('tunnel "nobody-home" is offline');
  const c = await connect(gw.apiUrl, created.id);
  const got = await exchange(c.port, new TextEncoder().encode("x"));
  expect(got.bytes.length).toBe(0);
  await c.child.waitErr(/is offline/, 10_000);
  // the gateway's public URL of a TCP tunnel serves no HTTP
  const svc = halfCloseServer(0);
  try {
    const s = await serve(gw.apiUrl, svc.port, ["--name", "nobody-home"]);
    const res = await fetch(`${gw.apiUrl}/`, { headers: { host: `${s.name}.localhost` } });
    expect(res.status).toBe(502);
  } finally {
    svc.stop(true);
  }
}, 120_000);

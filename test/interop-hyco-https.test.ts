/**
 * Interop: Microsoft's `hyco-https` HTTP listener (run under Node as a child process) against the
 * emulator, with `fetch` as the HTTP sender: inline GET / POST, > 64 KB request (address-only +
 * rendezvous) and > 64 KB response (response rendezvous). Skipped only when `node` is missing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { createSasToken } from "../src/hc/sas.ts";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";

const NODE = Bun.which("node");
const PEER = join(import.meta.dir, "interop", "peers", "https-listener.cjs");
const ROOT = "RootManageSharedAccessKey";

let emu: EmulatorHandle;
let peer: ReturnType<typeof Bun.spawn> | undefined;
let peerOutput = "";

beforeAll(async () => {
  emu = await startEmulator({ hybridConnections: [{ path: "hyco" }] });
});
afterAll(async () => {
  await emu?.stop();
});
afterEach(async () => {
  if (peer) {
    peer.kill();
    await peer.exited;
    peer = undefined;
  }
});

function key(): string {
  const r = emu.entities.namespaceRules.get(ROOT);
  if (!r) throw new Error("no root rule");
  return r.primaryKey;
}

function sas(): string {
  return createSasToken(`http://127.0.0.1:${emu.port}/hyco`, ROOT, key(), Math.floor(Date.now() / 1000) + 300);
}

/** Spawns the hyco-https listener and waits (bounded) for READY and for the emulator to count it. */
async function startPeer(): Promise<void> {
  if (!NODE) throw new Error("node not found");
  peerOutput = "";
  const proc = Bun.spawn([NODE, PEER], {
    env: { ...process.env, EMU: emu.url, HC: "hyco", KEYNAME: ROOT, KEY: key() },
    stdout: "pipe",
    stderr: "pipe",
  });
  peer = proc;
  void new Response(proc.stderr as ReadableStream).text().then((t) => {
    peerOutput += t;
  });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const deadline = Date.now() + 15_000;
  let out = "";
  while (!out.includes("READY")) {
    if (Date.now() > deadline) throw new Error(`hyco-https peer not ready: ${out}${peerOutput}`);
    const chunk = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => undefined)]);
    if (!chunk || chunk.done) throw new Error(`hyco-https peer exited: ${out}${peerOutput}`);
    out += new TextDecoder().decode(chunk.value);
  }
  reader.releaseLock();
  for (let i = 0; i < 100 && emu.listenerCount("hyco") === 0; i++) await Bun.sleep(20);
  expect(emu.listenerCount("hyco")).toBe(1);
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function pattern(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  len: number;
  sha256: string;
}

describe.skipIf(!NODE)("interop: hyco-https listener (Node) ↔ emulator ↔ fetch", () => {
  test("small GET with a query; sb-hc-* pairs stripped; headers both ways", async () => {
    await startPeer();
    const res = await fetch(`${emu.httpUrl}/hyco/echo?a=1&b=two&sb-hc-token=${encodeURIComponent(sas())}`, {
      headers: { "X-Test": "yes", Authorization: "Bearer app" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-peer")).toBe("hyco-https");
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("via")).toBe("1.1 127.0.0.1");
    const echo = (await res.json()) as Echo;
    expect(echo.method).toBe("GET");
    expect(echo.url).toBe("/hyco/echo?a=1&b=two");
    expect(echo.headers["x-test"]).toBe("yes");
    expect(echo.headers.authorization).toBe("Bearer app");
    expect(echo.len).toBe(0);
  });

  test("POST with a small body on the control channel", async () => {
    await startPeer();
    const body = new TextEncoder().encode(JSON.stringify({ hello: "relay", n: 42 }));
    const res = await fetch(`${emu.httpUrl}/hyco/echo`, {
      method: "POST",
      headers: { ServiceBusAuthorization: sas(), "Content-Type": "application/json" },
      body,
    });
    expect(res.status).toBe(200);
    const echo = (await res.json()) as Echo;
    expect(echo.method).toBe("POST");
    expect(echo.len).toBe(body.length);
    expect(echo.sha256).toBe(sha(body));
    expect(echo.headers["content-type"]).toBe("application/json");
    expect(echo.headers.servicebusauthorization).toBeUndefined();
  });

  test("> 64 KB request body (address-only request + rendezvous) and > 64 KB response (response rendezvous)", async () => {
    await startPeer();
    const body = pattern(150 * 1024);
    const up = await fetch(`${emu.httpUrl}/hyco/echo?big=1`, { method: "PUT", headers: { ServiceBusAuthorization: sas() }, body });
    expect(up.status).toBe(200);
    const echo = (await up.json()) as Echo;
    expect(echo.method).toBe("PUT");
    expect(echo.url).toBe("/hyco/echo?big=1");
    expect(echo.len).toBe(body.length);
    expect(echo.sha256).toBe(sha(body));

    const n = 300 * 1024;
    const down = await fetch(`${emu.httpUrl}/hyco/big?n=${n}`, { headers: { ServiceBusAuthorization: sas() } });
    expect(down.status).toBe(200);
    expect(down.headers.get("content-type")).toBe("application/octet-stream");
    const got = new Uint8Array(await down.arrayBuffer());
    expect(got.length).toBe(n);
    expect(sha(got)).toBe(sha(pattern(n)));

    // Several rounds in a row over the same listener, mixing the paths.
    for (let i = 0; i < 3; i++) {
      const small = await fetch(`${emu.httpUrl}/hyco/big?n=100`, { headers: { ServiceBusAuthorization: sas() } });
      expect((await small.arrayBuffer()).byteLength).toBe(100);
      const large = await fetch(`${emu.httpUrl}/hyco/big?n=${70 * 1024}`, { headers: { ServiceBusAuthorization: sas() } });
      expect(sha(new Uint8Array(await large.arrayBuffer()))).toBe(sha(pattern(70 * 1024)));
    }
  });
});

if (!NODE) test.skip("interop: hyco-https (skipped: `node` is not on PATH, hyco-https runs under Node)", () => {});

/**
 * Interop with Microsoft's hyco-ws (Node, child processes) through the emulator:
 * a hyco-ws listener echoes for OUR sender; OUR listener echoes for a hyco-ws sender.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { join } from "node:path";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";
import { HybridConnectionListener } from "../src/hc/listener.ts";
import { connectSender } from "../src/hc/sender.ts";
import { sasTokenProvider } from "../src/hc/tokens.ts";
import type { WsConnection } from "../src/ws/client.ts";

const NODE = Bun.which("node");
const RULE = "RootManageSharedAccessKey";
const PEERS = join(import.meta.dir, "interop", "peers");
let emu: EmulatorHandle;
let key: string;
const procs: Subprocess<"ignore", "pipe", "pipe">[] = [];
const cleanups: (() => unknown)[] = [];

/** A child process's stdout as lines, with a bounded wait for a matching line. */
function lines(proc: Subprocess<"ignore", "pipe", "pipe">) {
  const seen: string[] = [];
  const waiters = new Set<() => void>();
  (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        seen.push(buf.slice(0, i).trim());
        buf = buf.slice(i + 1);
      }
      for (const w of [...waiters]) w();
    }
  })().catch(() => {});
  return {
    seen,
    async waitFor(pred: (l: string) => boolean, ms = 10_000): Promise<string> {
      const end = Date.now() + ms;
      for (;;) {
        const hit = seen.find(pred);
        if (hit !== undefined) return hit;
        if (Date.now() > end) throw new Error(`peer did not print the expected line; saw: ${JSON.stringify(seen)}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, 100);
          waiters.add(() => {
            clearTimeout(t);
            r();
          });
        });
      }
    },
  };
}

function spawnPeer(script: string, hc: string) {
  const proc = Bun.spawn([NODE!, join(PEERS, script)], {
    env: { ...process.env, EMU: emu.url, HC: hc, KEYNAME: RULE, KEY: key },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  procs.push(proc);
  return { proc, out: lines(proc) };
}

beforeAll(async () => {
  emu = await startEmulator({ hybridConnections: [{ path: "hyco-listen" }, { path: "hyco-send" }] });
  key = emu.entities.namespaceRules.get(RULE)!.primaryKey;
});
afterAll(() => emu.stop());
afterEach(async () => {
  for (const p of procs.splice(0)) p.kill();
  for (const c of cleanups.splice(0)) await c();
});

describe.skipIf(!NODE)(`interop with hyco-ws under Node${NODE ? "" : " (skipped: node is not on PATH)"}`, () => {
  test("hyco-ws listener echoes for our sender (text, binary, subprotocol, close 4001)", async () => {
    const { out } = spawnPeer("ws-listener.cjs", "hyco-listen");
    await out.waitFor((l) => l === "READY");
    expect(emu.listenerCount("hyco-listen")).toBe(1);
    const ws = await connectSender({
      endpoint: emu.endpoint,
      hcPath: "hyco-listen",
      token: sasTokenProvider(RULE, key),
      protocols: ["chat.v1", "chat.v0"],
    });
    cleanups.push(() => ws.terminate());
    expect(ws.protocol).toBe("chat.v1");
    await out.waitFor((l) => l === "OPEN chat.v1");
    const next = () => new Promise<[string | Uint8Array, boolean]>((r) => ws.once("message", (d, b) => r([d, b])));
    let m = next();
    ws.send("hello hyco");
    expect(await m).toEqual(["hello hyco", false]);
    const bin = crypto.getRandomValues(new Uint8Array(200 * 1024));
    m = next();
    ws.send(bin);
    const [data, binary] = await m;
    expect(binary).toBe(true);
    expect(Buffer.compare(data as Uint8Array, bin)).toBe(0);
    ws.close(4001, "bye hyco");
    expect(await out.waitFor((l) => l.startsWith("CLOSE "))).toBe("CLOSE 4001 bye hyco");
  }, 30_000);

  test("our listener accepts and echoes for a hyco-ws sender", async () => {
    const l = new HybridConnectionListener({ endpoint: emu.endpoint, hcPath: "hyco-send", token: sasTokenProvider(RULE, key) });
    cleanups.push(() => l.close());
    const accepted: WsConnection[] = [];
    const closes: [number, string][] = [];
    l.on("accept", (msg) => {
      l.accept(msg).then((ws) => {
        accepted.push(ws);
        cleanups.push(() => ws.terminate());
        ws.on("message", (d) => ws.send(d));
        ws.on("close", (code, reason) => closes.push([code, reason]));
      }, () => {});
    });
    await l.open();
    const { proc, out } = spawnPeer("ws-sender.cjs", "hyco-send");
    const result = await out.waitFor((x) => x.startsWith("RESULT ") || x.startsWith("FAIL "));
    expect(result).toBe(`RESULT ${JSON.stringify({ text: "hello from hyco-ws", binaryLength: 100 * 1024 })}`);
    expect(await proc.exited).toBe(0);
    expect(accepted.length).toBe(1);
    const end = Date.now() + 5000;
    while (closes.length === 0 && Date.now() < end) await Bun.sleep(10);
    expect(closes).toEqual([[4001, "hyco bye"]]);
  }, 30_000);
});

/**
 * An app that speaks first on a WebSocket (Vite's HMR server sends `{"type":"connected"}` the
 * moment a client connects): that first message can reach the gateway together with the 101,
 * before Bun opens the public socket. It must be held and delivered, never dropped.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killAll, spawnCli } from "./support/cli-proc.ts";

afterEach(killAll);

function firstMessage(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const t = setTimeout(() => {
      ws.close();
      reject(new Error("no first message within 5 s"));
    }, 5000);
    ws.onmessage = (e) => {
      clearTimeout(t);
      ws.close(1000);
      resolve(String(e.data));
    };
    ws.onerror = () => reject(new Error("websocket failed"));
  });
}

test("the app's first WebSocket message, sent as the connection opens, always arrives", async () => {
  let n = 0;
  const app = Bun.serve<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, server) {
      if (server.upgrade(req, { data: undefined })) return undefined;
      return new Response("no");
    },
    websocket: {
      open(ws) {
        ws.send(`hello ${++n}`);
      },
      message() {},
    },
  });
  try {
    const cli = spawnCli(["start", String(app.port), "--json", "--no-inspect"], { cwd: mkdtempSync(join(tmpdir(), "azhexgate-wsfirst-")) });
    const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
    const url = String(ready.public_url).replace(/^http/, "ws");
    // many at once: the race (message with the 101, before `open`) shows up within a few
    const got = await Promise.all(Array.from({ length: 30 }, () => firstMessage(`${url}/hmr`)));
    expect(got.every((m) => /^hello \d+$/.test(m))).toBe(true);
    expect(new Set(got).size).toBe(30);
  } finally {
    app.stop(true);
  }
}, 60_000);

/**
 * A public WebSocket upgrade that Bun cannot complete (no Sec-WebSocket-Key) after the local app
 * accepted it: 400 with its own code, not `bad_host` — the Host header was fine (issue 18, scope 4).
 * Whole path on loopback: emulator, gateway, agent, app.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startStack, type Stack } from "./support/stack.ts";

let s: Stack;
beforeAll(async () => {
  s = await startStack({
    fetch(req, server) {
      if (server.upgrade(req, { data: undefined })) return undefined;
      return new Response("plain");
    },
    websocket: { message() {} },
  } as Parameters<typeof Bun.serve>[0]);
});
afterAll(() => s?.stop());

test("an upgrade without Sec-WebSocket-Key → 400 bad_websocket_upgrade saying what is missing; the stream is released", async () => {
  const host = new URL(s.url).host;
  const sock = await Bun.connect({ hostname: "127.0.0.1", port: s.gateway.port, socket: { data(_s, d) { got += d.toString(); }, close() { closed = true; } } });
  let got = "";
  let closed = false;
  sock.write(`GET /ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nAccept: application/json\r\n\r\n`);
  for (let i = 0; i < 200 && !got.includes("\r\n\r\n"); i++) await Bun.sleep(25);
  for (let i = 0; i < 40 && !got.includes("}"); i++) await Bun.sleep(25);
  sock.end();
  expect(got.split("\r\n")[0]).toBe("HTTP/1.1 400 Bad Request");
  expect(got.toLowerCase()).toContain("x-azhexgate-error: bad_websocket_upgrade");
  expect(got).toContain("Sec-WebSocket-Key");
  for (let i = 0; i < 100 && s.gateway.activeStreams > 0; i++) await Bun.sleep(50);
  expect(s.gateway.activeStreams).toBe(0);
  void closed;
}, 30_000);

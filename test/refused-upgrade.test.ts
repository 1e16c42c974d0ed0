/**
 * A WebSocket upgrade the local app refuses reaches the client as an ordinary response (issue 12,
 * Medium 9): binary body intact (1 MiB, no 64 KiB cut, no UTF-8 decoding), repeated Set-Cookie
 * kept apart, a body past the agent's limit cut visibly (never served as complete), and the
 * stream released on both ends. Whole path on loopback: emulator, gateway, agent, app.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { WsHandshakeError } from "../src/ws/client.ts";
import { connectWebSocket } from "../src/ws/connect.ts";
import { startStack, type Stack } from "./support/stack.ts";

const MiB = 1 << 20;
const BIN = new Uint8Array(MiB).map((_, i) => (i * 7 + (i >> 9)) & 0xff); // every byte value, not UTF-8
let s: Stack;

beforeAll(async () => {
  s = await startStack({
    fetch(req: Request) {
      const path = new URL(req.url).pathname;
      if (path === "/refuse-bin") {
        const h = new Headers([["content-type", "application/octet-stream"], ["set-cookie", "a=1; Path=/"], ["set-cookie", "b=2; Path=/"]]);
        return new Response(BIN, { status: 403, headers: h });
      }
      if (path === "/refuse-huge") return new Response(new Uint8Array(20 * MiB).fill(1), { status: 401 });
      return new Response("no", { status: 400 });
    },
  });
});
afterAll(() => s?.stop());

async function refusal(path: string): Promise<WsHandshakeError> {
  const u = new URL(s.url);
  const err = await connectWebSocket(`ws://127.0.0.1:${s.gateway.port}${path}`, { headers: { host: u.host }, proxy: null, maxErrorBodyBytes: 64 * MiB }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WsHandshakeError);
  return err as WsHandshakeError;
}

async function released(): Promise<void> {
  for (let i = 0; i < 100 && (s.gateway.activeStreams > 0 || s.agent.inFlight > 0); i++) await Bun.sleep(100);
  expect(s.gateway.activeStreams).toBe(0);
  expect(s.agent.inFlight).toBe(0);
}

test("a refused upgrade with a 1 MiB binary body and two Set-Cookie arrives intact, and the stream is released", async () => {
  const e = await refusal("/refuse-bin");
  expect(e.status).toBe(403);
  expect(e.raw.truncated).toBe(false);
  expect(e.raw.bodyBytes.length).toBe(MiB);
  expect(Buffer.from(e.raw.bodyBytes).equals(Buffer.from(BIN))).toBe(true);
  expect(e.raw.headerList.filter(([n]) => n === "set-cookie").map(([, v]) => v)).toEqual(["a=1; Path=/", "b=2; Path=/"]);
  expect(e.headers["content-type"]).toBe("application/octet-stream");
  await released();
}, 30_000);

test("a refusal body past the agent's limit (8 MiB) is cut visibly, never served as a complete answer", async () => {
  const e = await refusal("/refuse-huge");
  expect(e.status).toBe(401);
  expect(e.raw.truncated).toBe(true); // the body stopped short of its framing: the client can tell
  expect(e.raw.bodyBytes.length).toBeLessThan(20 * MiB);
  await released();
}, 30_000);

/**
 * WebSocket messages over a tunnel stream, as the app sees them (issue 18: mutation survivors in
 * src/tunnel/stream.ts — the binary flag, byte counters, a close queued behind messages).
 * Two in-memory sessions back to back (test/support/tunnel-peers.ts).
 */
import { expect, test } from "bun:test";
import type { TunnelStream } from "../src/tunnel/stream.ts";
import { pair, tick } from "./support/tunnel-peers.ts";

test("text stays text, binary stays binary, counters count bytes, a queued close comes after the messages", async () => {
  const got: Array<[string, boolean]> = [];
  let agentStream!: TunnelStream;
  let closed = null as [number, string] | null;
  const events: string[] = [];
  const { gateway } = pair({}, {
    onStream: (s) => {
      agentStream = s;
      s.onWsMessage = (d, binary) => {
        got.push([new TextDecoder().decode(d), binary]);
        events.push("message");
      };
      s.onWsClose = (code, reason) => {
        closed = [code, reason];
        events.push("close");
      };
      s.sendResponse({ status: 101, headers: [] });
    },
  });
  await gateway.ready;
  const ws = await gateway.open({ kind: "ws", method: "GET", target: "/", headers: [] });
  expect((await ws.response).status).toBe(101);
  let failed = 0;
  ws.wsSendQueued(new TextEncoder().encode("hello"), false, () => failed++);
  ws.wsSendQueued(new TextEncoder().encode("bin"), true, () => failed++);
  ws.wsSendQueued(new Uint8Array(0), true, () => failed++); // an empty message is still a message
  ws.wsCloseQueued(1000, "bye");
  for (let i = 0; i < 50 && !closed; i++) await tick();
  expect(failed).toBe(0);
  expect(got).toEqual([["hello", false], ["bin", true], ["", true]]);
  expect(closed).toEqual([1000, "bye"]);
  expect(events).toEqual(["message", "message", "message", "close"]);
  expect(ws.bytesSent).toBe(8);
  expect(agentStream.bytesReceived).toBe(8);
});

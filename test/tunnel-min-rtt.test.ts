/**
 * The round trip a session sizes windows from is the smallest it measured (src/tunnel/liveness.ts,
 * QUIC's min_rtt): a later PONG that came back behind a queue of bulk data does not replace it.
 * An explicit ping still resolves with its own measurement (what `azhexgate start` shows).
 */
import { expect, test } from "bun:test";
import { Liveness } from "../src/tunnel/liveness.ts";

const LIVE = [0x61, 0x6c, 0x69, 0x76, 0x65, 0x3f, 0x00, 0x00];

test("the smallest round trip stays; a longer later one is returned by ping() but not kept", async () => {
  const sent: Uint8Array[] = [];
  const l = new Liveness((p) => sent.push(p));
  const fast = l.ping(5000);
  l.pong(sent[0]!); // answered at once: the path's own round trip
  const first = await fast;
  expect(l.rtt).toBe(Math.max(first, 0.001)); // 0 would read as "none measured"
  const slow = l.ping(5000);
  await Bun.sleep(20); // a PONG queued behind a window of data
  l.pong(sent[1]!);
  const second = await slow;
  expect(second).toBeGreaterThanOrEqual(19);
  expect(second).toBeGreaterThan(first);
  expect(l.rtt).toBe(Math.max(first, 0.001));
  // a liveness PING answered slowly does not replace it either
  l.check(2);
  await Bun.sleep(5);
  l.pong(new Uint8Array(LIVE));
  expect(l.rtt).toBe(Math.max(first, 0.001));
});

test("a shorter round trip measured later replaces a longer first one", async () => {
  const sent: Uint8Array[] = [];
  const l = new Liveness((p) => sent.push(p));
  l.check(2);
  await Bun.sleep(15); // the first measurement, in a process that has just started
  l.pong(new Uint8Array(LIVE));
  const first = l.rtt;
  expect(first).toBeGreaterThanOrEqual(14);
  const p = l.ping(5000);
  l.pong(sent[1]!);
  const second = await p;
  expect(second).toBeLessThan(first);
  expect(l.rtt).toBe(Math.max(second, 0.001));
});

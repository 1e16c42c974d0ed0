/**
 * The round trip a session sizes windows from is the smallest it measured (src/tunnel/liveness.ts,
 * QUIC's min_rtt): a later PONG that came back behind a queue of bulk data does not replace it.
 * An explicit ping still resolves with its own measurement (what `azhexgate start` shows).
 * `probeRtt` measures it on a new session while nothing flows: after the hellos, one PING at a
 * time, and not at all on a session whose hello failed or that closed.
 */
import { expect, test } from "bun:test";
import { FrameType as T, decodeFrames, encodeFrames, type Frame } from "../src/tunnel/frame.ts";
import { Liveness, probeRtt } from "../src/tunnel/liveness.ts";
import { Session, type Transport } from "../src/tunnel/session.ts";
import { tick, V2_AGENT } from "./support/tunnel-peers.ts";

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

// ---- probeRtt: round trips on a new session, before any data (a real Session, frames recorded) ----

/** A gateway Session whose sent frames are recorded; `hello()` delivers the agent's hello. */
function recorded(versions?: number[]) {
  const sent: Array<Uint8Array | string> = [];
  const t: Transport = { send: (d) => (sent.push(d), true), drained: () => Promise.resolve(), close: () => {} };
  const s = new Session(t, { role: "gateway", ...(versions ? { versions } : {}) });
  const pings = () =>
    sent.filter((m): m is Uint8Array => typeof m !== "string").flatMap((m) => (decodeFrames(m) as { frames: Frame[] }).frames).filter((f) => f.type === T.PING);
  const hello = (o: object = V2_AGENT) => s.handleMessage(JSON.stringify({ features: ["ws"], window: 1 << 20, ...o }));
  return { s, pings, hello };
}

/** Answers every PING not yet answered, one event-loop turn after it went out. */
async function answer(r: ReturnType<typeof recorded>, done: Promise<void>): Promise<number> {
  let answered = 0;
  let finished = false;
  void done.then(() => (finished = true));
  for (let i = 0; i < 50 && !finished; i++) {
    await tick(2);
    const p = r.pings();
    expect(p.length - answered).toBeLessThanOrEqual(1); // one at a time: the next waits for its PONG
    for (; answered < p.length; answered++) r.s.handleMessage(encodeFrames([{ type: T.PONG, stream: 0, payload: p[answered]!.payload }]));
  }
  await done;
  return r.pings().length;
}

test("probeRtt: n PINGs one after another once the hellos are done; the session then knows its round trip", async () => {
  for (const n of [1, 3]) {
    const r = recorded();
    r.hello();
    expect(await answer(r, probeRtt(r.s, n))).toBe(n);
    expect(r.s.rtt).toBeGreaterThan(0);
  }
  const r = recorded();
  r.hello();
  expect(await answer(r, probeRtt(r.s))).toBe(3); // the default
});

test("probeRtt waits for the peer's hello: no PING before it", async () => {
  const r = recorded();
  const done = probeRtt(r.s, 2);
  await tick(5);
  expect(r.pings()).toHaveLength(0);
  r.hello();
  expect(await answer(r, done)).toBe(2);
});

test("probeRtt after a failed hello (no common version): no PING, and it resolves", async () => {
  const r = recorded([2]);
  const done = probeRtt(r.s, 3);
  r.hello({ azhexgate: 1, versions: [1], role: "agent" });
  await done;
  expect(r.s.isClosed).toBe(true);
  expect(r.pings()).toHaveLength(0);
});

test("probeRtt on a session that closes during the probe: no further PING, and it resolves", async () => {
  const r = recorded();
  r.hello();
  const done = probeRtt(r.s, 3);
  await tick(2);
  expect(r.pings()).toHaveLength(1);
  r.s.handleClose("the relay closed it");
  await done;
  await tick(2);
  expect(r.pings()).toHaveLength(1);
});

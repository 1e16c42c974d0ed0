/**
 * Issue 10 acceptance: "with pings unanswered, a tunnel serves requests continuously for
 * 3 minutes". The relay emulator leaves every ping of the agent's control channel unanswered
 * (it stops reading the channel: Bun's server answers pings itself, so not reading is the only
 * way not to answer), from before the agent connects.
 *
 * Time is shortened through options, not by skipping logic: the keep-alive interval is 200 ms
 * instead of 30 s (150× faster). 3 minutes at 30 s are 6 keep-alive intervals; this test runs
 * 30 s of wall time = 150 intervals of 200 ms, i.e. what 75 minutes would be at the production
 * interval, 25 times the 3 minutes asked for, and 50 times the 3 silent intervals that tear down a
 * channel whose relay did answer pings. Requests flow the whole time, and the control channel
 * is probed for new rendezvous every 5 s.
 */
import { afterEach, expect, test } from "bun:test";
import { KeepAliveMemo } from "../src/hc/listener.ts";
import { check, type LivenessStack, type Outcome, probeAccept, startLivenessStack } from "./support/liveness-stack.ts";

const KEEPALIVE_MS = 200;
const RUN_MS = 30_000;

let stack: LivenessStack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

test("pings unanswered: 150 keep-alive intervals (≈ 75 min at 30 s) of continuous requests, no reconnect", async () => {
  stack = await startLivenessStack({
    agent: { keepAlive: { keepAliveMs: KEEPALIVE_MS, keepAliveMemo: new KeepAliveMemo() } },
    before: (relay, hcPath) => relay.faults.pingsUnanswered(hcPath, true),
  });
  const s = stack;
  const outcomes: Outcome[] = [];
  const probes: boolean[] = [];
  const end = Date.now() + RUN_MS;
  let gaps = 0;
  let last = Date.now();
  await Promise.all([
    (async () => {
      let i = 0;
      while (Date.now() < end) {
        const o = await check(s.url, i++ % 2 ? "/bytes?n=20000" : "/stream?chunks=2&ms=20");
        outcomes.push(o);
        if (Date.now() - last > 2000) gaps++; // "continuously": never 2 s without an answer
        last = Date.now();
        await Bun.sleep(25);
      }
    })(),
    (async () => {
      while (Date.now() < end - 1000) {
        await Bun.sleep(5000);
        probes.push(await probeAccept(s));
      }
    })(),
  ]);
  const failed = outcomes.filter((o) => o.kind !== "ok");
  expect(failed).toEqual([]);
  expect(outcomes.length).toBeGreaterThan(100);
  expect(gaps).toBe(0);
  expect(probes.length).toBeGreaterThanOrEqual(5);
  expect(probes.every(Boolean)).toBe(true); // new rendezvous arrive over the unanswered channel
  expect(s.reconnects()).toBe(0);
  expect(s.states.of("online")).toHaveLength(1);
  expect(s.relay.listenerCount(s.hcPath)).toBe(1);
  // the listener noticed after two unanswered pings and switched to unsolicited pongs, once
  expect(s.events.filter((e) => e.event === "keep-alive fallback").map((e) => e.fields?.mode)).toEqual(["pong"]);
}, 90_000);

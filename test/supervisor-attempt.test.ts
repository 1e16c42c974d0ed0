/**
 * The attempt counter the agent reports (`azhexgate status`, the console: "reconnecting, attempt N")
 * starts again at 1 after the agent was online (issue 18: removing the reset survived the tests).
 * Manual clock; a real relay emulator on loopback.
 */
import { afterEach, expect, test } from "bun:test";
import { ManualClock } from "../src/agent/clock.ts";
import { type SupervisorHandle, superviseAgent } from "../src/agent/supervisor.ts";
import { startAgentRelay, type AgentRelay } from "./support/agent-relay.ts";
import { StateLog } from "./support/states.ts";

let fx: AgentRelay | undefined;
let sup: SupervisorHandle | undefined;
afterEach(async () => {
  await sup?.stop({ graceMs: 0 });
  await fx?.stop();
  sup = undefined;
  fx = undefined;
});

test("failed connects count 1, 2, …; after a time online a drop is attempt 1 again, connecting reports 0", async () => {
  const clock = new ManualClock(Date.now());
  fx = await startAgentRelay({ fetch: () => new Response("ok") }, { ttlMs: 3_600_000, now: () => clock.now() });
  const f = fx;
  let fails = 2;
  const connect: typeof f.connect = async (...a) => {
    if (fails > 0) {
      fails--;
      throw new Error("relay down");
    }
    return f.connect(...a);
  };
  const log = new StateLog();
  sup = superviseAgent({ origin: "http://127.0.0.1:9", hostHeader: "rewrite", clock, onState: log.push, backoff: { random: () => 0 }, connect, renew: f.renew });
  expect((await log.next("connecting")).attempt).toBe(0);
  expect((await log.next("reconnecting")).attempt).toBe(1);
  expect((await log.next("connecting")).attempt).toBe(1);
  expect((await log.next("reconnecting")).attempt).toBe(2);
  expect((await log.next("connecting")).attempt).toBe(2);
  await log.next("online");
  f.relay.faults.dropControlChannels(f.hcPath);
  expect((await log.next("reconnecting")).attempt).toBe(1);
  expect((await log.next("connecting")).attempt).toBe(1);
  await log.next("online");
});

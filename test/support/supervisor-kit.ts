/**
 * A supervised agent for the supervisor tests (test/supervisor-clock*.test.ts,
 * test/supervisor-mutants.test.ts): on a manual clock, its states and log events recorded, back-off
 * without jitter, an origin nobody answers on (the tests look at the tunnel, not at requests).
 */
import type { ManualClock } from "../../src/agent/clock.ts";
import { type SupervisorHandle, type SupervisorOptions, superviseAgent } from "../../src/agent/supervisor.ts";
import { startAgentRelay, type AgentRelay } from "./agent-relay.ts";
import { StateLog } from "./states.ts";

export type Ev = { event: string; fields?: Record<string, unknown> };

export function startRecorded(o: Partial<SupervisorOptions> & Pick<SupervisorOptions, "connect" | "renew">, clock: ManualClock) {
  const log = new StateLog();
  const events: Ev[] = [];
  const sup = superviseAgent({
    origin: "http://127.0.0.1:9",
    hostHeader: "rewrite",
    clock,
    onState: log.push,
    log: (event, fields) => events.push({ event, fields }),
    backoff: { random: () => 0 },
    ...o,
  });
  return { sup, log, events };
}

/**
 * The manual-clock tests' fixture: `relay` starts a relay emulator and gateway whose tokens live
 * `ttlMs` on `clock`, `start` a recorded supervisor; `cleanup` (run it in afterEach) stops both.
 */
export function clockFixture() {
  const fix = {
    /** The relay the test started (tests may set their own). */
    fx: undefined as AgentRelay | undefined,
    /** The supervisor the test started (tests may set their own). */
    sup: undefined as SupervisorHandle | undefined,
    start(o: Partial<SupervisorOptions> & Pick<SupervisorOptions, "connect" | "renew">, clock: ManualClock) {
      const r = startRecorded(o, clock);
      fix.sup = r.sup;
      return r;
    },
    async relay(clock: ManualClock, ttlMs: number): Promise<AgentRelay> {
      fix.fx = await startAgentRelay({ fetch: () => new Response("ok") }, { ttlMs, now: () => clock.now() });
      return fix.fx;
    },
    async cleanup(): Promise<void> {
      await fix.sup?.stop({ graceMs: 0 });
      fix.sup = undefined;
      await fix.fx?.stop();
      fix.fx = undefined;
    },
  };
  return fix;
}

/** Polls `cond` every 5 ms (real time) until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what = "condition", timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not met in time`);
    await Bun.sleep(5);
  }
}

/** Lets a renewal's promise chain run (no clock involved). */
export const flush = () => Bun.sleep(20);

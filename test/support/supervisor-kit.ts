/**
 * A supervised agent for the supervisor tests (test/supervisor-clock.test.ts,
 * test/supervisor-mutants.test.ts): on a manual clock, its states and log events recorded, back-off
 * without jitter, an origin nobody answers on (the tests look at the tunnel, not at requests).
 */
import type { ManualClock } from "../../src/agent/clock.ts";
import { type SupervisorOptions, superviseAgent } from "../../src/agent/supervisor.ts";
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

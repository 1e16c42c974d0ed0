/**
 * Stream ids are never reused (docs/protocol.md, "Rules every end enforces"; issue 18 found only
 * live ids checked): an OPEN for an id that was opened and has since closed — its stream released
 * on both sides — closes the session (1002), exactly like a live one.
 */
import { expect, test } from "bun:test";
import { ResetCode } from "../src/tunnel/frame.ts";
import { open, raw, V2_GATEWAY } from "./support/tunnel-peers.ts";

test("an OPEN reusing the id of a stream that has closed closes the session (1002)", () => {
  let opened = 0;
  const r = raw({ role: "agent", onStream: (s) => (opened++, s.reset(ResetCode.REFUSED, "no")) }, V2_GATEWAY);
  r.inject(open(1));
  expect(opened).toBe(1);
  expect(r.s.activeStreams).toBe(0); // stream 1 is closed and released
  expect(r.state.closed).toBeNull();
  r.inject(open(1));
  expect(opened).toBe(1); // not served again
  expect(r.state.closed?.[0]).toBe(1002);
  expect(r.state.closed?.[1]).toMatch(/stream id 1 reused or not increasing/);
});

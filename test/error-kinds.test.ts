/**
 * One error model (issue 18, scope 4): a failure is classified by its kind, not by its text.
 * A session that closes fails its streams with SessionLostError (the gateway maps that kind to
 * 502 tunnel_offline "disconnected before answering"); a peer's RESET whose reason merely reads
 * like it is not taken for one.
 */
import { expect, test } from "bun:test";
import { ResetCode } from "../src/tunnel/frame.ts";
import { SessionLostError, StreamResetError } from "../src/tunnel/stream.ts";
import { GET, pair, tick } from "./support/tunnel-peers.ts";

test("a closed session fails its open streams with the SessionLostError kind", async () => {
  const { gateway, agent } = pair({}, { onStream: () => {} });
  await gateway.ready;
  const s = await gateway.open(GET);
  const answer = s.response.then(() => null, (e: unknown) => e);
  await tick();
  agent.close(1001, "agent stopping");
  const err = await answer;
  expect(err).toBeInstanceOf(SessionLostError);
  expect(err).toBeInstanceOf(StreamResetError); // callers that only know resets still see one
  expect((err as SessionLostError).code).toBe(ResetCode.INTERNAL);
});

test("a peer RESET whose reason reads 'tunnel session lost' is an ordinary reset, not a lost session", async () => {
  const { gateway } = pair({}, { onStream: (st) => st.reset(ResetCode.INTERNAL, "tunnel session lost: forged by the peer") });
  await gateway.ready;
  const s = await gateway.open(GET);
  const err = await s.response.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(StreamResetError);
  expect(err).not.toBeInstanceOf(SessionLostError);
  expect((err as StreamResetError).reason).toBe("tunnel session lost: forged by the peer");
});

test("a request waiting on a closed pool fails with the PoolClosedError kind (the gateway answers tunnel_offline 'was closed', not 'not connected')", async () => {
  const { PoolClosedError, SessionPool } = await import("../src/tunnel/pool.ts");
  let dials = 0;
  const pool = new SessionPool({ dial: async () => (dials++, Promise.reject(new Error("must not dial"))) });
  pool.close();
  const err = await pool.acquire().then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(PoolClosedError);
  expect(dials).toBe(0);
});

/**
 * The supervisor's remaining observable outputs (issue 18: mutation testing left them untested):
 * the logs an operator reads when a tunnel session stops answering, when a wake prunes silent
 * sessions, when the control channel reports an error; the close a gateway sees when the agent
 * gives up; the default round-trip interval. A real relay emulator, gateway and sender socket on
 * loopback; the faults are the emulator's own; only the supervisor's clock is faked.
 */
import { afterEach, expect, test } from "bun:test";
import { Backoff } from "../src/agent/backoff.ts";
import { ManualClock } from "../src/agent/clock.ts";
import { type SupervisorHandle, type SupervisorOptions, type TunnelGrant } from "../src/agent/supervisor.ts";
import { resourceUri } from "../src/hc/address.ts";
import { createSasToken } from "../src/hc/sas.ts";
import { connectSender } from "../src/hc/sender.ts";
import { sasTokenProvider } from "../src/hc/tokens.ts";
import { startAgentRelay, type AgentRelay } from "./support/agent-relay.ts";
import { startRecorded } from "./support/supervisor-kit.ts";

let fx: AgentRelay | undefined;
let sup: SupervisorHandle | undefined;
afterEach(async () => {
  await sup?.stop({ graceMs: 0 });
  sup = undefined;
  await fx?.stop();
  fx = undefined;
});

function start(o: Partial<SupervisorOptions> & Pick<SupervisorOptions, "connect" | "renew">, clock: ManualClock) {
  const r = startRecorded(o, clock);
  sup = r.sup;
  return r;
}

async function relay(clock: ManualClock): Promise<AgentRelay> {
  fx = await startAgentRelay({ fetch: () => new Response("ok") }, { ttlMs: 3_600_000, now: () => clock.now() });
  return fx;
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not met in time`);
    await Bun.sleep(2);
  }
}

/** A sender socket of our own on the tunnel's hybrid connection (what the gateway dials). */
function dialAsGateway(f: AgentRelay) {
  const root = f.relay.entities.namespaceRules.get("RootManageSharedAccessKey")!;
  return connectSender({ endpoint: f.relay.endpoint, hcPath: f.hcPath, token: sasTokenProvider(root.name, root.primaryKey) });
}

test("a tunnel session that stops answering pings is evicted and logged with its streams in flight", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock);
  const { log, events } = start({ connect: f.connect, renew: f.renew, origin: `http://127.0.0.1:${f.origin.port}`, sessionPingMs: 100 }, clock);
  await log.next("online");
  expect((await fetch(f.url)).status).toBe(200); // the gateway opens a tunnel session
  expect(f.relay.faults.blackholeConnection(f.hcPath)).toBe(1);
  await waitFor(() => events.some((e) => e.event === "session evicted"), "eviction logged");
  expect(events.find((e) => e.event === "session evicted")?.fields).toEqual({ reason: "no answer to tunnel pings", inFlight: 0 });
  expect(sup!.state.state).toBe("online"); // the control channel is not involved
});

test("a wake pings every tunnel session and logs how many stayed silent and were closed", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock);
  const { log, events } = start({ connect: f.connect, renew: f.renew, origin: `http://127.0.0.1:${f.origin.port}`, sessionPingMs: 0 }, clock);
  await log.next("online");
  expect((await fetch(f.url)).status).toBe(200);
  expect(f.relay.faults.blackholeConnection(f.hcPath)).toBe(1);
  clock.jump(60_000);
  clock.advance(0); // the wake: every session is pinged, 5 s (on the clock) to answer
  await log.next("reconnecting");
  await Bun.sleep(50);
  expect(events.some((e) => e.event === "sessions pruned")).toBe(false);
  clock.advance(5000);
  await waitFor(() => events.some((e) => e.event === "sessions pruned"), "prune logged");
  expect(events.filter((e) => e.event === "sessions pruned").map((e) => e.fields)).toEqual([{ count: 1 }]);
});

test("a control-channel error (a relayed HTTP request whose rendezvous is refused) is logged with its code", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock);
  const { log, events } = start({ connect: f.connect, renew: f.renew }, clock);
  await log.next("online");
  f.relay.faults.refuseAccepts(f.hcPath, 403);
  const root = f.relay.entities.namespaceRules.get("RootManageSharedAccessKey")!;
  const se = Math.floor(Date.now() / 1000) + 3600;
  const token = createSasToken(resourceUri(f.relay.endpoint, f.hcPath), root.name, root.primaryKey, se);
  // over 64 KB: the relay sends the listener an address-only request; its rendezvous is refused
  const ac = new AbortController();
  const res = fetch(`${f.relay.httpUrl}/${f.hcPath}`, { method: "POST", headers: { ServiceBusAuthorization: token }, body: new Uint8Array(70_000), signal: ac.signal }).catch(() => null);
  await waitFor(() => events.some((e) => e.event === "listener error"), "listener error logged");
  ac.abort();
  await res;
  const e = events.find((x) => x.event === "listener error")!;
  expect(Object.keys(e.fields!).sort()).toEqual(["code", "error"]);
  expect(e.fields!.code).toBe("forbidden");
  expect(String(e.fields!.error)).toMatch(/403/);
  expect(sup!.state.state).toBe("online"); // an error on one request is not a lost channel
});

test("with exitOnFail, a permanent failure closes the agent's tunnel sessions with 1001 'agent failed'", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock);
  const refused = Object.assign(new Error("the tunnel was revoked"), { code: "tunnel_revoked", retryable: false });
  const renew = async (g: TunnelGrant, o: { rejected: boolean }) => (o.rejected ? Promise.reject(refused) : f.renew(g, o));
  const { sup: s, log } = start({ connect: f.connect, renew, exitOnFail: true }, clock);
  await log.next("online");
  const conn = await dialAsGateway(f);
  const { promise: closed, resolve } = Promise.withResolvers<[number, string]>();
  conn.on("close", (code, reason) => resolve([code, reason]));
  await Bun.sleep(100); // the rendezvous is paired: the agent accepted it; let it start the session
  f.relay.faults.dropControlChannels(f.hcPath, { code: 1008, reason: "token expired" }); // → renew, which is refused for good
  expect(await s.closed).toBe(refused);
  const timeout = Bun.sleep(5000).then(() => [0, "not closed"] as [number, string]);
  expect(await Promise.race([closed, timeout])).toEqual([1001, "agent failed"]);
});

test("the default round-trip interval is 15 s", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock);
  const { log } = start({ connect: f.connect, renew: f.renew, origin: `http://127.0.0.1:${f.origin.port}` }, clock);
  await log.next("online");
  expect((await fetch(f.url)).status).toBe(200);
  clock.advance(10_000); // two ticks (default 5 s), 10 s since the start
  await Bun.sleep(100);
  expect(sup!.rttMs).toBeUndefined();
  const t0 = performance.now();
  clock.advance(5000);
  await waitFor(() => sup!.rttMs !== undefined, "rtt measured");
  const elapsed = performance.now() - t0;
  // a tenth of a millisecond, and no longer than the wall time the measurement took
  expect(sup!.rttMs!).toBeGreaterThan(0);
  expect(sup!.rttMs!).toBeLessThanOrEqual(elapsed + 0.05);
});

test("the disconnected log names the fix the next attempt applies: a failed claim claims again, a failed near-expiry renewal tries as is", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock);
  f.ttlMs = 999; // every token is near expiry: a reconnect on the same claim renews first
  let connectFails = 1;
  const connect = async () => {
    if (connectFails-- > 0) throw new Error("management API down");
    return f.connect();
  };
  let renewFails = 1;
  const renew = async (g: TunnelGrant, o: { rejected: boolean }) => {
    if (renewFails-- > 0) throw new Error("management API busy");
    return f.renew(g, o);
  };
  const { log, events } = start({ connect, renew }, clock);
  clock.advance((await log.next("reconnecting")).inMs);
  await log.next("online");
  f.relay.faults.dropControlChannels(f.hcPath);
  await log.next("reconnecting"); // the drop: try as is, at once
  clock.advance((await log.next("reconnecting")).inMs); // the renewal failed
  await log.next("online");
  const d = events.filter((e) => e.event === "disconnected").map((e) => [e.fields!.fix, e.fields!.code, e.fields!.error]);
  expect(d).toEqual([
    ["connect", "error", "management API down"],
    ["none", d[1]![1], d[1]![2]],
    ["none", "error", "management API busy"],
  ]);
  expect(f.calls.connect).toBe(1);
  expect(f.calls.renew).toEqual([{ rejected: false }]);
});

test("a renewal that completes after the tunnel was claimed afresh is dropped: the new claim's token stays", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock);
  f.ttlMs = 100_000;
  const { promise: gate, resolve: release } = Promise.withResolvers<void>();
  let calls = 0;
  const renew = async (g: TunnelGrant, o: { rejected: boolean }) => {
    if (++calls === 1) await gate;
    return f.renew(g, o);
  };
  const { log, events } = start({ connect: f.connect, renew }, clock);
  expect((await log.next("online")).sessionId).toBe("s-1");
  clock.advance(80_000); // the renewal starts…
  expect(calls).toBe(1);
  f.relay.faults.deleteHc(f.hcPath); // …the hybrid connection goes: the agent claims the tunnel again
  expect((await log.next("reconnecting")).code).toBe("entity_deleted");
  expect((await log.next("online")).sessionId).toBe("s-2");
  release();
  await Bun.sleep(100);
  expect(events.some((e) => e.event === "token renewed")).toBe(false);
  // the new claim's renewal is due at 80 % of its own life, not the stale token's
  clock.advance(79_999);
  await Bun.sleep(20);
  expect(calls).toBe(1);
  clock.advance(1);
  await waitFor(() => events.some((e) => e.event === "token renewed"), "the new claim renewed");
  expect(calls).toBe(2);
});

test("a log sink that stops the agent on a clock jump leaves no timer behind", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock);
  let stopped: Promise<void> | undefined;
  const { log } = start(
    {
      connect: f.connect,
      renew: f.renew,
      log: (event) => {
        if (event === "clock jump") stopped = sup!.stop({ graceMs: 0 });
      },
    },
    clock,
  );
  await log.next("online");
  clock.jump(60_000);
  clock.advance(0);
  expect(stopped).toBeDefined();
  await stopped;
  expect(sup!.state).toEqual({ state: "offline", reason: "stopped" });
  expect(clock.pending).toBe(0);
});

test("a Backoff instance passed in is the one the supervisor counts on", async () => {
  const clock = new ManualClock(1_000_000);
  const backoff = new Backoff({ baseMs: 1000, capMs: 1000, random: () => 0.5 });
  let fails = 2;
  const connect = async (): Promise<TunnelGrant> => {
    if (fails-- > 0) throw new Error("relay down");
    throw Object.assign(new Error("stop here"), { retryable: false });
  };
  const { sup: s, log } = start({ connect, renew: f0, backoff, exitOnFail: true }, clock);
  for (let i = 0; i < 2; i++) {
    expect(await log.next("reconnecting")).toMatchObject({ inMs: 500, attempt: i + 1 });
    expect(backoff.attempt).toBe(i + 1);
    clock.advance(500);
  }
  expect((await s.closed)?.message).toBe("stop here");
  expect(clock.pending).toBe(0); // no tick left armed after giving up
});
const f0 = async (): Promise<never> => {
  throw new Error("renew must not be called");
};

test("a second stop does not wait for a relay that never answers the control channel's close", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock);
  const { sup: s, log } = start({ connect: f.connect, renew: f.renew }, clock);
  await log.next("online");
  expect(f.relay.faults.pingsUnanswered(f.hcPath, true)).toBe(1); // the relay stops reading the channel
  const first = s.stop({ graceMs: 60_000 });
  await log.next("stopping");
  await Bun.sleep(50);
  const second = s.stop();
  // the close handshake would time out after 5 s; the second stop ends it now
  const outcome = await Promise.race([second.then(() => "stopped"), Bun.sleep(3000).then(() => "still waiting for the close")]);
  expect(outcome).toBe("stopped");
  await first;
  expect(s.state).toEqual({ state: "offline", reason: "stopped" });
  f.relay.faults.pingsUnanswered(f.hcPath, false);
});

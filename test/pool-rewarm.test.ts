/**
 * Re-warm (issue 17, round trips to the first byte): when the agent restarts, the gateway's pool
 * loses its sessions; if the tunnel was in use it re-dials in the background, so the agent that
 * comes back holds a session before any visitor asks — the next request pays no rendezvous.
 * Real emulator, gateway, agents and app on loopback.
 */
import { afterEach, expect, test } from "bun:test";
import { startAgent, type AgentHandle } from "../src/agent/agent.ts";
import { sasTokenProvider } from "../src/hc/tokens.ts";
import { PoolError, SessionPool } from "../src/tunnel/pool.ts";
import { Dialer, echo } from "./support/pool-dial.ts";
import { startStack, type Stack } from "./support/stack.ts";

let stack: Stack | undefined;
let again: AgentHandle | undefined;
afterEach(async () => {
  await again?.stop().catch(() => {});
  await stack?.stop();
  stack = again = undefined;
});

const app = { fetch: () => new Response("hello") };

/** Stops the stack's agent after one request, waits, and starts a new agent on the same hybrid connection. */
async function restartAgent(s: Stack): Promise<AgentHandle> {
  const r = await fetch(s.url);
  expect(await r.text()).toBe("hello");
  await s.agent.stop();
  await Bun.sleep(700); // the agent is away for a while (the gateway's dials are refused meanwhile)
  const key = s.relay.entities.namespaceRules.get("RootManageSharedAccessKey")!.primaryKey;
  return startAgent({
    endpoint: s.relay.endpoint,
    hcPath: `hc-${s.id}`,
    token: sasTokenProvider("RootManageSharedAccessKey", key),
    origin: `http://127.0.0.1:${s.origin.port}`,
    hostHeader: "rewrite",
  });
}

async function sessionsWithin(a: AgentHandle, ms: number): Promise<number> {
  const end = Date.now() + ms;
  while (a.sessions.size === 0 && Date.now() < end) await Bun.sleep(50);
  return a.sessions.size;
}

test("the agent comes back: the gateway re-dials on its own, and the agent holds a session before any request", async () => {
  stack = await startStack(app);
  again = await restartAgent(stack);
  // no request is sent: only the gateway's background re-warm can open a session
  expect(await sessionsWithin(again, 20_000)).toBeGreaterThan(0);
  const r = await fetch(stack.url);
  expect(r.status).toBe(200);
  expect(await r.text()).toBe("hello");
});

test("with re-warm off (rewarmMs 0) the returning agent gets no session until a request asks for one", async () => {
  stack = await startStack(app, { gateway: { pool: { rewarmMs: 0 } } });
  again = await restartAgent(stack);
  expect(await sessionsWithin(again, 3000)).toBe(0);
  const r = await fetch(stack.url);
  expect(await r.text()).toBe("hello");
  expect(again.sessions.size).toBeGreaterThan(0);
});

test("a tunnel nobody used within the re-warm window is not re-dialed", async () => {
  stack = await startStack(app, { gateway: { pool: { rewarmMs: 300 } } });
  const r = await fetch(stack.url);
  expect(await r.text()).toBe("hello");
  await Bun.sleep(600); // the last request is older than the window
  await stack.agent.stop();
  const key = stack.relay.entities.namespaceRules.get("RootManageSharedAccessKey")!.primaryKey;
  again = await startAgent({
    endpoint: stack.relay.endpoint,
    hcPath: `hc-${stack.id}`,
    token: sasTokenProvider("RootManageSharedAccessKey", key),
    origin: `http://127.0.0.1:${stack.origin.port}`,
    hostHeader: "rewrite",
  });
  expect(await sessionsWithin(again, 2000)).toBe(0);
});

test("a dial that fails before the agent's hello starts no re-warm: only an open session lost does", async () => {
  // (found under load: a background dial after a handshake timeout made one rendezvous too many)
  const d = new Dialer(echo, { silent: true });
  const pool = new SessionPool({ dial: () => d.dial(), helloMs: 30 });
  try {
    const err = await pool.acquire().catch((e) => e);
    expect(err).toBeInstanceOf(PoolError);
    await Bun.sleep(1000); // past the first re-warm delays (250 ms, 500 ms)
    expect([d.dials, pool.rewarmDials, pool.rewarming]).toEqual([1, 0, false]);
  } finally {
    pool.close();
  }
});

/**
 * The gateway does not keep a session pool for every tunnel ever requested (issue 18): a pool
 * with no session, no stream and no request waiting is dropped by the sweep; a tunnel whose agent
 * holds a session keeps its pool; a dropped tunnel is served again on its next request.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startStack, type Stack } from "./support/stack.ts";

let s: Stack;
beforeAll(async () => {
  s = await startStack({ fetch: () => new Response("ok") }, {
    gateway: {
      poolSweepMs: 100,
      // 20 extra tunnels on hybrid connections nobody listens on (their agents are gone)
      resolveTunnel: (t) => (t === s.id ? { hcPath: `hc-${s.id}` } : /^gone\d+$/.test(t) ? { hcPath: `hc-${s.id}-${t}` } : undefined),
    },
  });
});
afterAll(() => s?.stop());

test("pools of tunnels with no session are dropped; the served tunnel keeps its pool and still answers", async () => {
  expect(await (await fetch(s.url)).text()).toBe("ok");
  for (let i = 0; i < 20; i++) {
    const r = await fetch(s.gateway.tunnelUrl(`gone${i}`), { headers: { accept: "application/json" } });
    expect([r.status, r.headers.get("x-azhexgate-error")]).toEqual([502, "tunnel_offline"]);
  }
  expect(s.gateway.tunnelPools).toBeGreaterThan(1);
  for (let i = 0; i < 50 && s.gateway.tunnelPools > 1; i++) await Bun.sleep(100);
  expect(s.gateway.tunnelPools).toBe(1); // only the tunnel whose agent holds a session
  expect(await (await fetch(s.url)).text()).toBe("ok");
  // a dropped tunnel is asked again: a new pool, the same answer
  const again = await fetch(s.gateway.tunnelUrl("gone3"), { headers: { accept: "application/json" } });
  expect(again.headers.get("x-azhexgate-error")).toBe("tunnel_offline");
});

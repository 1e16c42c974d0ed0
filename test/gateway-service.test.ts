/**
 * Gateway service endpoints (health, readiness, Prometheus metrics) and graceful drain.
 */
import { describe, expect, test } from "bun:test";
import { startStack } from "./support/stack.ts";

describe("service endpoints", () => {
  test("/healthz, /readyz and /metrics on the apex or an IP host, never shadowing a tunnel's own paths", async () => {
    let ready = true;
    const s = await startStack({ fetch: (req: Request) => new Response(`app ${new URL(req.url).pathname}`) }, { gateway: { ready: () => ready } });
    try {
      const direct = `http://127.0.0.1:${s.gateway.port}`;
      expect(await (await fetch(direct + "/healthz")).text()).toBe("ok\n");
      expect((await fetch(direct + "/readyz")).status).toBe(200);
      ready = false;
      expect((await fetch(direct + "/readyz")).status).toBe(503);
      expect(await (await fetch(`http://localhost:${s.gateway.port}/healthz`)).text()).toBe("ok\n");
      // on a tunnel's host the path belongs to the app
      expect(await (await fetch(s.url + "/healthz")).text()).toBe("app /healthz");
      await fetch(s.url + "/x");
      await fetch(s.url.replace(s.id, "77777777") + "/x");
      const metrics = await (await fetch(direct + "/metrics")).text();
      expect(metrics).toContain("# TYPE azhexgate_requests_total counter");
      expect(metrics).toContain(`azhexgate_requests_total{code="2xx",kind="http",tunnel="${s.id}"} 2`);
      expect(metrics).toContain('azhexgate_gateway_errors_total{code="tunnel_not_found"} 1');
      expect(metrics).toMatch(new RegExp(`azhexgate_tunnel_sessions\\{tunnel="${s.id}"\\} [1-9]`));
      // "app /healthz" + "app /x" came back from the agent; nothing was uploaded
      expect(metrics).toContain(`azhexgate_bytes_total{direction="out",tunnel="${s.id}"} 18`);
      expect(metrics).not.toContain(`azhexgate_bytes_total{direction="in",tunnel="${s.id}"}`);
    } finally {
      await s.stop();
    }
  });
});

describe("graceful drain", () => {
  test("in-flight responses finish; new connections are refused; sessions close", async () => {
    const s = await startStack({
      fetch: () =>
        new Response(
          new ReadableStream({
            async start(c) {
              for (let i = 0; i < 10; i++) {
                c.enqueue(new Uint8Array(1000).fill(65 + i));
                await Bun.sleep(100);
              }
              c.close();
            },
          }),
        ),
    });
    try {
      const slow = await fetch(s.url + "/slow");
      const body = slow.arrayBuffer();
      const cut = s.gateway.drain(5000);
      // A new connection is refused; a request on a kept-alive connection gets the restart answer.
      const fresh = await fetch(s.url + "/new").then((r) => `${r.status} ${r.headers.get("x-azhexgate-error")}`, () => "refused");
      expect(["refused", "502 tunnel_offline"]).toContain(fresh);
      expect((await body).byteLength).toBe(10_000);
      expect(await cut).toBe(0);
      // the tunnel sessions are closed: the agent holds none (bounded wait)
      for (let i = 0; i < 100 && s.agent.sessions.size > 0; i++) await Bun.sleep(50);
      expect(s.agent.sessions.size).toBe(0);
    } finally {
      await s.stop();
    }
  });
});

/**
 * doctor's ready line against the gateway's own /readyz answers (src/gateway/health.ts served by a
 * real Bun.serve): a draining gateway is told apart by its x-azhexgate-error code, never by the
 * words of the body; any other 503 shows its reason and points at it.
 */
import { afterEach, expect, test } from "bun:test";
import { checkReadyz } from "../src/doctor/health.ts";
import { parseTarget } from "../src/doctor/target.ts";
import { healthAnswer, type HealthOptions } from "../src/gateway/health.ts";

let server: ReturnType<typeof Bun.serve> | undefined;
afterEach(() => {
  server?.stop(true);
  server = undefined;
});

function gatewayProbes(o: Omit<HealthOptions, "baseDomain" | "metrics">): string {
  const opts: HealthOptions = { baseDomain: "localhost", metrics: () => "", ...o };
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => healthAnswer(req, new URL(req.url).pathname, req.headers.get("host"), () => "127.0.0.1", opts) ?? new Response("no", { status: 404 }),
  });
  return `http://localhost:${server.port}`;
}

test("draining: the fix says the gateway is shutting down (from the code header)", async () => {
  const url = gatewayProbes({ draining: () => true });
  const probe = await fetch(`${url}/readyz`);
  expect(probe.status).toBe(503);
  expect(probe.headers.get("x-azhexgate-error")).toBe("gateway_draining");
  const r = await checkReadyz(parseTarget(url), { timeoutMs: 5000 });
  expect(r.status).toBe("fail");
  expect(r.detail).toBe("GET /readyz → 503: draining");
  expect(r.fix).toContain("shutting down");
});

test("not ready for a reason that mentions draining: still the reason's fix, not the shutdown one", async () => {
  const url = gatewayProbes({ draining: () => false, ready: () => ({ ready: false, reason: "waiting for the registry (draining its queue)" }) });
  const r = await checkReadyz(parseTarget(url), { timeoutMs: 5000 });
  expect(r.status).toBe("fail");
  expect(r.detail).toBe("GET /readyz → 503: waiting for the registry (draining its queue)");
  expect(r.fix).not.toContain("shutting down");
  expect(r.fix).toContain("the reason above");
});

test("ready: the line passes", async () => {
  const url = gatewayProbes({ draining: () => false, ready: () => true });
  const r = await checkReadyz(parseTarget(url), { timeoutMs: 5000 });
  expect(r.status).toBe("pass");
  expect(r.detail).toBe("GET /readyz → 200 ready");
});

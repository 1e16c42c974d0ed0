/**
 * Request edges (issue 12, Low): an unfinished request body times out (the gateway's body idle
 * limit) and the stream is released; a client that gives up is counted as `client_gone`, not as
 * a `tunnel_error`. Whole path on loopback.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startStack, type Stack } from "./support/stack.ts";

let s: Stack;
const seen: string[] = [];
beforeAll(async () => {
  s = await startStack(
    {
      async fetch(req: Request) {
        const path = new URL(req.url).pathname;
        if (path === "/slow") {
          await Bun.sleep(2000);
          return new Response("late");
        }
        try {
          const body = await req.text();
          seen.push(`body ${body.length}`);
          return new Response("got " + body.length);
        } catch {
          seen.push("body failed");
          return new Response("failed", { status: 400 });
        }
      },
    },
    { gateway: { bodyIdleMs: 1500 } },
  );
});
afterAll(() => s?.stop());

test("a request body that stops half way is abandoned after the idle limit: the app sees it fail, the stream is released", async () => {
  const host = new URL(s.url).host;
  const sock = await Bun.connect({ hostname: "127.0.0.1", port: s.gateway.port, socket: { data() {}, close() {} } });
  sock.write(`POST /up HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 100\r\n\r\n0123456789`);
  const t0 = Date.now();
  for (let i = 0; i < 100 && !seen.length; i++) await Bun.sleep(100);
  expect(seen).toEqual(["body failed"]); // never a 10-byte body passed off as complete
  expect(Date.now() - t0).toBeLessThan(9000);
  for (let i = 0; i < 50 && (s.gateway.activeStreams > 0 || s.agent.inFlight > 0); i++) await Bun.sleep(100);
  expect(s.gateway.activeStreams).toBe(0);
  expect(s.agent.inFlight).toBe(0);
  sock.end();
}, 30_000);

test("a client that gives up is counted as client_gone, not tunnel_error", async () => {
  const count = async (code: string) => {
    const m = await (await fetch(`http://127.0.0.1:${s.gateway.port}/metrics`)).text();
    return Number(new RegExp(`azhexgate_gateway_errors_total\\{code="${code}"\\} (\\d+)`).exec(m)?.[1] ?? 0);
  };
  const [tunnelBefore, goneBefore] = [await count("tunnel_error"), await count("client_gone")];
  await fetch(s.url + "/slow", { signal: AbortSignal.timeout(300) }).catch(() => {});
  await Bun.sleep(2500);
  expect(await count("tunnel_error")).toBe(tunnelBefore);
  expect(await count("client_gone")).toBe(goneBefore + 1);
}, 30_000);

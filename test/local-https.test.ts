/**
 * `--local-https`: the local app serves HTTPS with a self-signed development certificate; HTTP
 * and WebSocket still reach it through the tunnel.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { selfSignedCert } from "./support/relay-probe.ts";
import { startStack, type Stack } from "./support/stack.ts";

let stack: Stack;
beforeAll(async () => {
  const tls = selfSignedCert();
  stack = await startStack(
    {
      tls,
      fetch(req: Request, server: { upgrade(r: Request): boolean }) {
        if (new URL(req.url).pathname === "/ws") return server.upgrade(req) ? undefined : new Response("no", { status: 400 });
        return new Response(`secure origin saw ${new URL(req.url).pathname}`);
      },
      websocket: { message: (ws: { send(m: string | Uint8Array): void }, m: string | Uint8Array) => ws.send(m) },
    } as never,
    { originScheme: "https" },
  );
});
afterAll(() => stack?.stop());

test("HTTP and WebSocket reach an https origin with a self-signed certificate", async () => {
  expect(await (await fetch(stack.url + "/tls")).text()).toBe("secure origin saw /tls");
  const ws = new WebSocket(stack.url.replace("http", "ws") + "/ws");
  const echoed = await new Promise<string>((resolve, reject) => {
    ws.onopen = () => ws.send("over tls");
    ws.onmessage = (e) => resolve(String(e.data));
    ws.onerror = () => reject(new Error("websocket failed"));
  });
  ws.close();
  expect(echoed).toBe("over tls");
});

/**
 * A broken or hostile agent's answers (issue 12, Low): a response header value outside Latin-1
 * → 502 `invalid_response_header` with no stack trace and the stream released. The agent here is
 * built from the project's own listener and session, answering what a real agent never would.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { HybridConnectionListener } from "../src/hc/listener.ts";
import { sasTokenProvider } from "../src/hc/tokens.ts";
import { Session } from "../src/tunnel/session.ts";
import type { TunnelStream } from "../src/tunnel/stream.ts";
import { startStack, type Stack } from "./support/stack.ts";

let s: Stack;
let listener: HybridConnectionListener;
const errors: string[] = [];
const origError = console.error;

beforeAll(async () => {
  s = await startStack({ fetch: () => new Response("ok") });
  await s.agent.stop(); // replaced by the hostile one below
  const key = s.relay.entities.namespaceRules.get("RootManageSharedAccessKey")!.primaryKey;
  listener = new HybridConnectionListener({ endpoint: s.relay.endpoint, hcPath: `hc-${s.id}`, token: sasTokenProvider("RootManageSharedAccessKey", key) });
  listener.on("error", () => {});
  listener.on("accept", async (msg) => {
    const conn = await listener.accept(msg);
    const session = new Session(conn, {
      role: "agent",
      onStream: (stream: TunnelStream) => {
        const path = stream.head?.target ?? "/";
        stream.discardBody();
        if (path === "/bad-header") {
          stream.sendResponse({ status: 200, headers: [["x-name", "中文"]] });
          stream.end();
        } else {
          stream.sendResponse({ status: 200, headers: [["content-type", "text/plain"]] });
          void stream.write(new TextEncoder().encode("fine")).then(() => stream.end());
        }
      },
    });
    conn.on("message", (d) => session.handleMessage(d as Uint8Array));
    conn.on("close", () => session.handleClose("closed"));
    conn.on("error", () => {});
  });
  await listener.open();
  console.error = (...a: unknown[]) => void errors.push(a.map(String).join(" "));
});
afterAll(async () => {
  console.error = origError;
  await listener?.close().catch(() => {});
  await s?.stop();
});

test("a non-Latin-1 response header value from the agent → 502 invalid_response_header, no stack trace, stream released", async () => {
  const r = await fetch(s.url + "/bad-header");
  expect(r.status).toBe(502);
  expect(r.headers.get("x-azhexgate-error")).toBe("invalid_response_header");
  const body = await r.text();
  expect(body).not.toContain("    at ");
  expect(errors.join("\n")).not.toContain("TypeError");
  for (let i = 0; i < 50 && s.gateway.activeStreams > 0; i++) await Bun.sleep(100);
  expect(s.gateway.activeStreams).toBe(0);
  // the session survives: the next request on it is answered
  const ok = await fetch(s.url + "/fine");
  expect(await ok.text()).toBe("fine");
}, 30_000);

/**
 * Tunnel protocol v2 through the whole path (relay emulator, gateway, agent, a local app, all on
 * loopback): a head over the limit fails that request only (431 / 502) while other requests on
 * the same session go on; an older (v1-only) agent still serves a newer gateway; an agent with no
 * common protocol version gets a 502 that says who must upgrade.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startGateway } from "../src/gateway/server.ts";
import { FrameType, decodeFrames, encodeFrame, varintPayload, type Frame } from "../src/tunnel/frame.ts";
import { Session } from "../src/tunnel/session.ts";
import { Emitter, type WsConnection, type WsEvents } from "../src/ws/client.ts";
import { startStack, type Stack } from "./support/stack.ts";

/** An in-memory stand-in for an HC sender connection: what the gateway sends goes to `onSend`. */
class FakeConn extends Emitter<WsEvents> {
  onSend: (d: string | Uint8Array) => void = () => {};
  send(d: string | Uint8Array): boolean {
    const copy = typeof d === "string" ? d : d.slice();
    queueMicrotask(() => this.onSend(copy));
    return true;
  }
  sendParts(parts: readonly Uint8Array[]): boolean {
    return this.send(Buffer.concat(parts));
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  close(code = 1000, reason = ""): void {
    queueMicrotask(() => this.emit("close", code, reason));
  }
  deliver(d: string | Uint8Array): void {
    this.emit("message", d, typeof d !== "string");
  }
}

const origin = {
  async fetch(req: Request) {
    const url = new URL(req.url);
    if (url.pathname === "/slow") await Bun.sleep(300);
    if (url.pathname === "/big-response") return new Response("too big", { headers: { "x-huge": "h".repeat(140_000) } });
    return new Response(`ok ${url.pathname} ${req.headers.get("x-big")?.length ?? 0}`, { headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"]] });
  },
};

describe("v2 end to end", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack(origin);
  });
  afterAll(() => stack?.stop());

  test("a 150,000-byte request header → 431 for that request; concurrent and later requests on the session are unaffected", async () => {
    expect(await (await fetch(`${stack.url}/warm`)).text()).toBe("ok /warm 0");
    const sessions = [...stack.agent.sessions];
    expect(sessions.length).toBeGreaterThan(0);
    expect(sessions.every((s) => s.version === 2)).toBe(true);
    const slow = fetch(`${stack.url}/slow`); // in flight on the session while the big one fails
    const big = await fetch(`${stack.url}/big`, { headers: { "x-big": "a".repeat(150_000) } });
    expect(big.status).toBe(431);
    expect(big.headers.get("x-azhexgate-error")).toBe("request_headers_too_large");
    expect(((await big.json()) as { error: { message: string } }).error.message).toMatch(/headers are larger than the tunnel carries/);
    const slowRes = await slow;
    expect([slowRes.status, await slowRes.text()]).toEqual([200, "ok /slow 0"]);
    const after = await fetch(`${stack.url}/after`, { headers: { "x-big": "b".repeat(60_000) } });
    expect(await after.text()).toBe("ok /after 60000");
    expect(after.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    // the same sessions, none closed
    expect(sessions.every((s) => !s.isClosed)).toBe(true);
    expect([...stack.agent.sessions].filter((s) => sessions.includes(s)).length).toBe(sessions.length);
  });

  test("a response head over the limit → 502 response_headers_too_large; the session goes on", async () => {
    const sessions = [...stack.agent.sessions];
    const res = await fetch(`${stack.url}/big-response`);
    expect(res.status).toBe(502);
    expect(res.headers.get("x-azhexgate-error")).toBe("response_headers_too_large");
    expect(await (await fetch(`${stack.url}/next`)).text()).toBe("ok /next 0");
    expect(sessions.every((s) => !s.isClosed)).toBe(true);
  });
});

describe("compatibility", () => {
  test("a v1-only agent behind a v2 gateway: negotiated v1, requests and repeated headers work", async () => {
    const stack = await startStack(origin, { agent: { protocolVersions: [1] } });
    try {
      const res = await fetch(`${stack.url}/old`, { headers: { "x-big": "c".repeat(1000) } });
      expect(await res.text()).toBe("ok /old 1000");
      expect(res.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
      expect([...stack.agent.sessions].map((s) => s.version)).toContain(1);
    } finally {
      await stack.stop();
    }
  });
  test("no common version: 502 tunnel_version_mismatch naming both versions and who must upgrade", async () => {
    const stack = await startStack(origin, { gateway: { pool: { protocolVersions: [2] } }, agent: { protocolVersions: [1] } });
    try {
      const res = await fetch(`${stack.url}/x`);
      expect(res.status).toBe(502);
      expect(res.headers.get("x-azhexgate-error")).toBe("tunnel_version_mismatch");
      expect(((await res.json()) as { error: { message: string } }).error.message).toBe(
        "tunnel protocol mismatch: this gateway speaks versions 2, the agent speaks 1; upgrade azhexgate on the agent",
      );
    } finally {
      await stack.stop();
    }
  });
});

describe("GOAWAY through the gateway", () => {
  test("an agent's GOAWAY below an in-flight stream: that bodiless request is retried once on a new session and answered", async () => {
    const id = "12345678";
    let dials = 0;
    const dial = async (): Promise<WsConnection> => {
      const conn = new FakeConn();
      if (++dials === 1) {
        // an agent that is going away: it answers the first OPEN with GOAWAY(lastStream below it)
        conn.onSend = (d) => {
          if (typeof d === "string") return conn.deliver(JSON.stringify({ azhexgate: 1, versions: [1, 2], role: "agent", features: ["ws"], window: 1 << 20, sessionWindow: 1 << 24 }));
          const open = (decodeFrames(d) as { frames: Frame[] }).frames.find((f) => f.type === FrameType.OPEN);
          if (open) conn.deliver(encodeFrame(FrameType.GOAWAY, 0, varintPayload(open.stream - 1, 0)));
        };
      } else {
        const send = (m: string | Uint8Array) => {
          const copy = typeof m === "string" ? m : m.slice();
          setImmediate(() => conn.deliver(copy)); // as over a socket: after the gateway has wired the connection
          return true;
        };
        const agent = new Session({ send, drained: async () => {}, close: () => {} }, {
          role: "agent",
          onStream: (s) => {
            s.sendResponse({ status: 200, headers: [] });
            void s.write(new TextEncoder().encode(`served ${s.head!.target}`)).then(() => s.end());
          },
        });
        conn.onSend = (m) => agent.handleMessage(m);
      }
      return conn as unknown as WsConnection;
    };
    const gw = await startGateway({ baseDomain: "localhost", resolveTunnel: (t) => (t === id ? { hcPath: "hc" } : undefined), dial, pool: { min: 1 } });
    try {
      const res = await fetch(`${gw.tunnelUrl(id)}/x`, { signal: AbortSignal.timeout(10_000) });
      expect([res.status, await res.text()]).toEqual([200, "served /x"]);
      expect(dials).toBe(2);
      // a request with a body is not retried: it may have been partly sent
    } finally {
      await gw.stop();
    }
  });
});

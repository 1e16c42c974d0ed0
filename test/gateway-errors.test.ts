/**
 * Errors a user can act on: each has a status, a stable code in X-AzHexGate-Error and a JSON or
 * HTML body chosen by Accept. Real servers end to end.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startStack, type Stack } from "./support/stack.ts";

let stack: Stack;
beforeAll(async () => {
  stack = await startStack(
    {
      async fetch(req: Request) {
        if (new URL(req.url).pathname === "/slow") await Bun.sleep(1500);
        return new Response("ok");
      },
    },
    { gateway: { ttfbMs: 400 } },
  );
});
afterAll(() => stack?.stop());

async function rawRequest(port: number, head: string): Promise<string> {
  const chunks: string[] = [];
  return new Promise((resolve, reject) => {
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(s) {
          s.write(head);
        },
        data(_s, d) {
          chunks.push(Buffer.from(d).toString());
        },
        close() {
          resolve(chunks.join(""));
        },
        error(_s, e) {
          reject(e);
        },
      },
    }).then((s) => setTimeout(() => s.end(), 500));
  });
}

describe("gateway errors", () => {
  test("unknown subdomain → 404 tunnel_not_found, JSON by default and HTML for browsers", async () => {
    const url = stack.url.replace(stack.id, "99999999");
    const json = await fetch(url + "/x");
    expect(json.status).toBe(404);
    expect(json.headers.get("x-azhexgate-error")).toBe("tunnel_not_found");
    expect(await json.json()).toEqual({ error: { code: "tunnel_not_found", message: "Tunnel 99999999 does not exist or has expired." } });
    const html = await fetch(url + "/x", { headers: { accept: "text/html,application/xhtml+xml" } });
    expect(html.status).toBe(404);
    expect(html.headers.get("content-type")).toContain("text/html");
    expect(await html.text()).toContain("Tunnel 99999999 does not exist");
  });

  test("malformed or duplicate Host → 400 bad_host; CONNECT → 405", async () => {
    const bad = await rawRequest(stack.gateway.port, "GET / HTTP/1.1\r\nHost: bad_host!\r\nConnection: close\r\n\r\n");
    expect(bad).toMatch(/^HTTP\/1\.1 400/);
    expect(bad.toLowerCase()).toContain("x-azhexgate-error: bad_host");
    const dup = await rawRequest(stack.gateway.port, `GET / HTTP/1.1\r\nHost: ${stack.id}.localhost\r\nHost: other.localhost\r\nConnection: close\r\n\r\n`);
    expect(dup).toMatch(/^HTTP\/1\.1 400/);
    const connect = await rawRequest(stack.gateway.port, `CONNECT ${stack.id}.localhost:443 HTTP/1.1\r\nHost: ${stack.id}.localhost:443\r\nConnection: close\r\n\r\n`);
    expect(connect).toMatch(/^HTTP\/1\.1 (405|400)/);
  });

  test("origin slower than the time-to-first-byte limit → 504 origin_timeout", async () => {
    const res = await fetch(stack.url + "/slow");
    expect(res.status).toBe(504);
    expect(res.headers.get("x-azhexgate-error")).toBe("origin_timeout");
    // the tunnel still serves afterwards
    expect(await (await fetch(stack.url + "/fast")).text()).toBe("ok");
  });
});

describe("gateway errors with a broken path", () => {
  test("nothing listening on the local port → 502 origin_unreachable naming the port", async () => {
    const s = await startStack({ fetch: () => new Response("never") }, { originPort: 1 });
    try {
      const res = await fetch(s.url + "/");
      expect(res.status).toBe(502);
      expect(res.headers.get("x-azhexgate-error")).toBe("origin_unreachable");
      expect((await res.json()).error.message).toContain("localhost:1");
    } finally {
      await s.stop();
    }
  });

  test("tunnel known but no agent connected → 502 tunnel_offline", async () => {
    const s = await startStack({ fetch: () => new Response("hi") });
    try {
      expect(await (await fetch(s.url + "/")).text()).toBe("hi");
      await s.agent.stop();
      // existing sessions are closed by the agent; new dials find no listener
      let res: Response | undefined;
      for (let i = 0; i < 50; i++) {
        res = await fetch(s.url + "/");
        if (res.status === 502) break;
        await Bun.sleep(20);
      }
      expect(res!.status).toBe(502);
      expect(res!.headers.get("x-azhexgate-error")).toBe("tunnel_offline");
      expect((await res!.json()).error.message).toMatch(/not connected|disconnected/);
    } finally {
      await s.stop();
    }
  });
});

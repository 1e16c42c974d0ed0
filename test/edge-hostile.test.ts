/**
 * Hostile HTTP/1.1 framing at the public edge, sent as raw bytes over TCP to a real gateway →
 * relay emulator → agent → local app stack: request smuggling (CL.TE, TE.CL, duplicate lengths,
 * obfuscated Transfer-Encoding), `Upgrade: h2c`, and a slowloris client dripping header bytes.
 * The app counts every request it receives and records its path and headers, so each test
 * asserts what reached it, not only what the client was answered.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startStack, type Stack } from "./support/stack.ts";

interface Seen {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

let stack: Stack;
let host = "";
const seen: Seen[] = [];

beforeAll(async () => {
  stack = await startStack({
    async fetch(req: Request) {
      const body = await req.text();
      const path = new URL(req.url).pathname;
      seen.push({ method: req.method, path, headers: Object.fromEntries(req.headers), body });
      return new Response(`ok ${path}`);
    },
  });
  host = new URL(stack.url).host;
});
afterAll(() => stack?.stop());

interface RawResult {
  text: string;
  status: number;
  closed: boolean;
}

/** Writes `req` on a fresh TCP connection and collects what comes back until the server closes,
 * `done(text)` says the answer is complete, or `ms` passes (then `closed` is false). */
function raw(req: string, done: (text: string) => boolean = () => false, ms = 5000): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    let text = "";
    let settled = false;
    const finish = (closed: boolean, sock?: { end(): void }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock?.end();
      resolve({ text, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), closed });
    };
    let socket: { end(): void } | undefined;
    const timer = setTimeout(() => finish(false, socket), ms);
    Bun.connect({
      hostname: "127.0.0.1",
      port: stack.gateway.port,
      socket: {
        open: (sock) => {
          socket = sock;
          sock.write(req);
        },
        data: (sock, d) => {
          text += new TextDecoder().decode(d);
          if (done(text)) finish(false, sock);
        },
        close: () => finish(true),
      },
    }).catch(reject);
  });
}

/** A second request hidden after a first one whose framing is ambiguous. */
const smuggled = () => `GET /smuggled HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

describe("request smuggling", () => {
  const cases: [string, () => string][] = [
    ["CL.TE: Content-Length and Transfer-Encoding: chunked", () =>
      `POST /front HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled()}`],
    ["TE.CL: Transfer-Encoding: chunked before a Content-Length", () =>
      `POST /front HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n${smuggled()}`],
    ["two differing Content-Length headers", () =>
      `POST /front HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\nContent-Length: ${smuggled().length}\r\n\r\n${smuggled()}`],
    ["Transfer-Encoding: chunked, identity (with a Content-Length)", () =>
      `POST /front HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled()}`],
    ["Transfer-Encoding: xchunked (with a Content-Length)", () =>
      `POST /front HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled()}`],
    ["Transfer-Encoding: xchunked alone", () =>
      `POST /front HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled()}`],
  ];
  for (const [name, build] of cases) {
    test(`${name}: 400 and the connection closed; nothing reaches the app`, async () => {
      const before = seen.length;
      const res = await raw(build());
      // Bun's server refuses the ambiguous framing itself, before the gateway's fetch handler runs.
      expect(res.status).toBe(400);
      expect(res.closed).toBe(true);
      expect(res.text).not.toContain("ok /");
      expect(seen.length).toBe(before);
      // the gateway still serves the next honest client
      const ok = await fetch(stack.url + "/after");
      expect(await ok.text()).toBe("ok /after");
      expect(seen.map((s) => s.path)).not.toContain("/smuggled");
      expect(seen.slice(before).map((s) => s.path)).toEqual(["/after"]);
    });
  }
});

describe("Upgrade: h2c", () => {
  test("not switched to HTTP/2: served as HTTP/1.1, and the app sees neither Upgrade nor HTTP2-Settings", async () => {
    const before = seen.length;
    const res = await raw(
      `GET /h2c HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`,
      (t) => t.endsWith("ok /h2c"),
    );
    expect(res.status).toBe(200);
    expect(res.text).toStartWith("HTTP/1.1 200");
    expect(res.text.toLowerCase()).not.toContain("upgrade:");
    expect(res.text).toEndWith("\r\n\r\nok /h2c");
    const got = seen.slice(before);
    expect(got.map((s) => s.path)).toEqual(["/h2c"]);
    const names = Object.keys(got[0]!.headers).map((h) => h.toLowerCase());
    expect(names).not.toContain("upgrade");
    expect(names).not.toContain("http2-settings");
    expect(names).not.toContain("connection");
  });
});

describe("slowloris", () => {
  test("a client dripping header bytes is cut off within a bounded time while another is served", async () => {
    const before = seen.length;
    const req = `GET /slow HTTP/1.1\r\nHost: ${host}\r\nX-Pad: ${"a".repeat(200)}\r\n\r\n`;
    const t0 = performance.now();
    let closedAt = -1;
    let answer = "";
    const sock = await Bun.connect({
      hostname: "127.0.0.1",
      port: stack.gateway.port,
      socket: {
        data: (_s, d) => void (answer += new TextDecoder().decode(d)),
        close: () => void (closedAt = performance.now() - t0),
      },
    });
    const served: string[] = [];
    let sent = 0;
    // one byte every 500 ms; bounded by the request's length (≈ 120 s) and by 60 s of wall time
    while (closedAt < 0 && sent < req.length && performance.now() - t0 < 60_000) {
      sock.write(req[sent++]!);
      if (sent % 6 === 3) served.push(await (await fetch(stack.url + `/meanwhile`)).text());
      else await Bun.sleep(500);
    }
    if (closedAt < 0) sock.end();
    console.log(`slowloris: cut off after ${Math.round(closedAt)} ms having sent ${sent} of ${req.length} bytes`);
    expect(closedAt).toBeGreaterThan(0); // the server closed it, not our own bound
    expect(closedAt).toBeLessThan(60_000);
    expect(sent).toBeLessThan(req.length); // the headers never completed
    expect(answer).toBe(""); // cut off without an answer
    expect(served.length).toBeGreaterThan(0);
    expect(served.every((t) => t === "ok /meanwhile")).toBe(true);
    expect(seen.slice(before).map((s) => s.path).every((p) => p === "/meanwhile")).toBe(true);
  }, 75_000);
});

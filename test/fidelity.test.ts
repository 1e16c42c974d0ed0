/**
 * What reaches the app is what was sent — and where Bun.serve (1.4.4) decides otherwise, exactly
 * what README.md and docs/protocol.md say (issue 12, Medium 10 and 11, Low absolute-form). Raw
 * request lines from a TCP socket through the whole path on loopback.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startStack, type Stack } from "./support/stack.ts";

let s: Stack;
let host = "";
beforeAll(async () => {
  s = await startStack({
    async fetch(req: Request) {
      const body = await req.text();
      const u = new URL(req.url);
      return Response.json({ method: req.method, target: u.pathname + u.search, body, ct: req.headers.get("content-type"), cl: req.headers.get("content-length"), te: req.headers.get("transfer-encoding") });
    },
  });
  host = new URL(s.url).host;
});
afterAll(() => s?.stop());

/** Sends `head` (+ body) as raw bytes to the gateway; resolves with status and parsed JSON body. */
function raw(requestLine: string, headers: string[] = [], body = ""): Promise<{ status: number; json: Record<string, string | null> }> {
  const req = `${requestLine}\r\nHost: ${host}\r\nConnection: close\r\n${headers.map((h) => h + "\r\n").join("")}\r\n${body}`;
  return new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error("no answer in 10 s")), 10_000);
    void Bun.connect({
      hostname: "127.0.0.1",
      port: s.gateway.port,
      socket: {
        open: (sock) => void sock.write(req),
        data: (_sock, d) => void (out += new TextDecoder().decode(d)),
        close: () => {
          clearTimeout(t);
          const [head, ...rest] = out.split("\r\n\r\n");
          const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head ?? "")?.[1] ?? 0);
          const text = rest.join("\r\n\r\n");
          let json: Record<string, string | null> = {};
          try {
            json = JSON.parse(text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1));
          } catch {}
          resolve({ status, json });
        },
      },
    });
  });
}

test("request targets: escapes kept as sent; dot segments resolved and unsafe characters escaped, as documented", async () => {
  // kept byte for byte: existing percent-escapes (any case), '+', '//', reserved characters
  expect((await raw("GET /p%2Fq%20r%41?x=%2f&y=a+b&z=%7E HTTP/1.1")).json.target).toBe("/p%2Fq%20r%41?x=%2f&y=a+b&z=%7E");
  expect((await raw("GET /a//b;c=d HTTP/1.1")).json.target).toBe("/a//b;c=d");
  // normalised by Bun's URL parser before the gateway sees the request (documented)
  expect((await raw("GET /%2e%2e/admin HTTP/1.1")).json.target).toBe("/admin");
  expect((await raw("GET /a/./b/../c HTTP/1.1")).json.target).toBe("/a/c");
  expect((await raw('GET /x?a="b" HTTP/1.1')).json.target).toBe("/x?a=%22b%22");
  expect((await raw("GET /x?r=<> HTTP/1.1")).json.target).toBe("/x?r=%3C%3E");
});

test("an OPTIONS body reaches the app; a preflight without one stays bodiless", async () => {
  const withBody = await raw("OPTIONS /o HTTP/1.1", ["Content-Type: text/plain", "Content-Length: 5"], "hello");
  expect(withBody.json).toMatchObject({ method: "OPTIONS", body: "hello", ct: "text/plain", cl: "5" });
  const preflight = await raw("OPTIONS /o HTTP/1.1", ["Origin: http://x.example", "Access-Control-Request-Method: PUT"]);
  expect(preflight.json).toMatchObject({ method: "OPTIONS", body: "", cl: null, te: null });
});

test("a GET body (dropped by Bun before we see it) does not leave its Content-Type or framing behind", async () => {
  const r = await raw("GET /g HTTP/1.1", ["Content-Type: application/json", "Content-Length: 7"], '{"a":1}');
  expect(r.status).toBe(200);
  expect(r.json).toMatchObject({ method: "GET", body: "", ct: null, cl: null, te: null });
  // a GET with a Content-Type and no body keeps it (nothing was declared that we dropped)
  expect((await raw("GET /g HTTP/1.1", ["Content-Type: application/json"])).json.ct).toBe("application/json");
});

test("an absolute-form target is routed by Host, with the origin-form path (Bun drops the authority; documented)", async () => {
  const r = await raw("GET http://elsewhere.example/abs?x=1 HTTP/1.1");
  expect(r.status).toBe(200);
  expect(r.json.target).toBe("/abs?x=1");
});

test("no Content-Type is invented when the app sent none (small whole bodies and streamed ones)", async () => {
  const rawApp = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(sock, d) {
        const body = new TextDecoder().decode(d).includes("/big") ? "x".repeat(100_000) : "hello";
        sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      },
    },
  });
  const t = await startStack({ fetch: () => new Response("unused") }, { originPort: rawApp.port });
  try {
    for (const [path, len] of [["/small", 5], ["/big", 100_000]] as const) {
      const r = await fetch(t.url + path);
      expect(r.headers.get("content-type")).toBeNull();
      expect((await r.text()).length).toBe(len);
    }
  } finally {
    await t.stop();
    rawApp.stop(true);
  }
});

/**
 * Relay emulator, HTTP request mode: control-channel delivery, address-only requests over a
 * rendezvous, responses > 64 KB over the request's rendezvous, 504 / 502, token stripping.
 * The listener here is a tiny native-WebSocket one built on decodeControlMessage.
 */
import { describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { type RequestMessage, decodeControlMessage } from "../src/hc/messages.ts";
import { createSasToken } from "../src/hc/sas.ts";
import type { EmulatorHandle } from "../src/emulator/server.ts";
import { emulatorFixture, sasFor } from "./support/emulator-fixture.ts";

const { sockets, start } = emulatorFixture({ hybridConnections: [{ path: "hc" }] });
const token = sasFor;

interface Seen {
  request: RequestMessage;
  body: Uint8Array;
  via: "control" | "rendezvous";
}
interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** Send the response on a rendezvous to the request's address (as listeners do above 64 KB). */
  rendezvous?: boolean;
  /** Never answer. */
  silent?: boolean;
  /** body:false followed by a stray zero-length binary message (hyco-https on 204). */
  strayEmptyBody?: boolean;
}

function openWs(url: string, headers?: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers } as unknown as string[]);
  ws.binaryType = "arraybuffer";
  sockets.push(ws);
  return new Promise((resolve, reject) => {
    ws.addEventListener("open", () => resolve(ws), { once: true });
    ws.addEventListener("error", (ev) => reject(new Error((ev as ErrorEvent).message)), { once: true });
  });
}

function sendResponse(ws: WebSocket, req: RequestMessage, r: Reply): void {
  const body = typeof r.body === "string" ? new TextEncoder().encode(r.body) : r.body;
  ws.send(JSON.stringify({ response: { requestId: req.id, statusCode: r.status, responseHeaders: r.headers ?? {}, body: body !== undefined } }));
  if (body !== undefined) ws.send(body);
  else if (r.strayEmptyBody) ws.send(new Uint8Array(0));
}

/** An HTTP-mode listener: answers each request with `handler`'s reply. */
async function httpListener(e: EmulatorHandle, handler: (s: Seen) => Reply, path = "hc"): Promise<{ seen: Seen[]; ws: WebSocket }> {
  const ws = await openWs(`${e.url}/$hc/${path}?sb-hc-action=listen`, { ServiceBusAuthorization: token(e, path) });
  const seen: Seen[] = [];
  const answer = async (sock: WebSocket, s: Seen) => {
    seen.push(s);
    const reply = handler(s);
    if (reply.silent) return;
    if (reply.rendezvous && s.via === "control") {
      const rv = await openWs(s.request.address);
      sendResponse(rv, s.request, reply);
    } else sendResponse(sock, s.request, reply);
  };
  /** Reads request (+ body) messages from a socket and answers them on it. */
  const reader = (sock: WebSocket, via: Seen["via"]) => {
    let pending: RequestMessage | undefined;
    sock.addEventListener("message", (ev) => {
      if (typeof ev.data === "string") {
        const m = decodeControlMessage(ev.data);
        if (!("request" in m)) return;
        const r = m.request;
        if (r.method === undefined) {
          void openWs(r.address).then((rv) => reader(rv, "rendezvous"));
          return;
        }
        if (r.body) pending = r;
        else void answer(sock, { request: r, body: new Uint8Array(0), via });
      } else if (pending) {
        const r = pending;
        pending = undefined;
        void answer(sock, { request: r, body: new Uint8Array(ev.data as ArrayBuffer), via });
      }
    });
  };
  reader(ws, "control");
  return { seen, ws };
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("HTTP request mode", () => {
  test("small GET on the control channel: target, stripped headers and query, Via", async () => {
    const e = await start();
    const l = await httpListener(e, () => ({ status: 200, headers: { "Content-Type": "text/plain", "X-App": "1" }, body: "hi there" }));
    const res = await fetch(`${e.httpUrl}/hc/api/items?x=1&sb-hc-token=${encodeURIComponent(token(e))}&sb-hc-x&y=%22q%22`, {
      headers: { "X-Multi": "a", Authorization: "Bearer app-token" },
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hi there");
    expect(res.headers.get("x-app")).toBe("1");
    expect(res.headers.get("via")).toBe("1.1 127.0.0.1");
    const s = l.seen[0];
    if (!s) throw new Error("no request seen");
    expect(s.via).toBe("control");
    expect(s.request.method).toBe("GET");
    expect(s.request.body).toBe(false);
    expect(s.request.requestTarget).toBe("/hc/api/items?x=1&sb-hc-x&y=%22q%22");
    const h = s.request.requestHeaders ?? {};
    expect(h["X-Multi"]).toBe("a");
    expect(h.Authorization).toBe("Bearer app-token"); // passed through: the token travelled in the query
    expect(h.Host).toBeUndefined();
    expect(h.Via).toBe("1.1 127.0.0.1");
    expect(s.request.address).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${e.port}/\\$hc/hc\\?sb-hc-action=request&sb-hc-id=`));
  });

  test("POST with a small body; ServiceBusAuthorization is stripped and Authorization kept", async () => {
    const e = await start();
    const l = await httpListener(e, (s) => ({ status: 201, headers: { "Content-Type": "application/json" }, body: JSON.stringify({ len: s.body.length }) }));
    const res = await fetch(`${e.httpUrl}/hc/post`, {
      method: "POST",
      headers: { ServiceBusAuthorization: token(e), Authorization: "Basic abc", "Content-Type": "application/json" },
      body: JSON.stringify({ hello: "world" }),
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ len: 17 });
    const h = l.seen[0]?.request.requestHeaders ?? {};
    expect(h.Authorization).toBe("Basic abc");
    expect(Object.keys(h).map((k) => k.toLowerCase())).not.toContain("servicebusauthorization");
    expect(new TextDecoder().decode(l.seen[0]?.body)).toBe('{"hello":"world"}');
  });

  test("an Authorization header that carried the token is removed", async () => {
    const e = await start();
    const l = await httpListener(e, () => ({ status: 204, strayEmptyBody: true }));
    const res = await fetch(`${e.httpUrl}/hc`, { headers: { Authorization: token(e) } });
    expect(res.status).toBe(204);
    expect(l.seen[0]?.request.requestHeaders?.Authorization).toBeUndefined();
    // the stray empty binary message did not upset the channel
    const again = await fetch(`${e.httpUrl}/hc`, { headers: { Authorization: token(e) } });
    expect(again.status).toBe(204);
  });

  test("a > 64 KB request goes address-only, then in full on the rendezvous", async () => {
    const e = await start();
    const l = await httpListener(e, (s) => ({ status: 200, body: sha(s.body) }));
    const body = randomBytes(200 * 1024);
    const res = await fetch(`${e.httpUrl}/hc/upload?q=1`, { method: "PUT", headers: { ServiceBusAuthorization: token(e) }, body });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(sha(body));
    expect(l.seen[0]?.via).toBe("rendezvous");
    expect(l.seen[0]?.request.requestTarget).toBe("/hc/upload?q=1");
    expect(l.seen[0]?.request.method).toBe("PUT");
  });

  test("a chunked request without a length goes over the rendezvous", async () => {
    const e = await start();
    const l = await httpListener(e, (s) => ({ status: 200, body: String(s.body.length) }));
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(10));
        c.enqueue(new Uint8Array(20));
        c.close();
      },
    });
    const res = await fetch(`${e.httpUrl}/hc`, { method: "POST", headers: { ServiceBusAuthorization: token(e) }, body: stream });
    expect(await res.text()).toBe("30");
    expect(l.seen[0]?.via).toBe("rendezvous");
  });

  test("a > 64 KB response arrives over a rendezvous the listener opens", async () => {
    const e = await start();
    const big = randomBytes(300 * 1024);
    await httpListener(e, () => ({ status: 200, headers: { "Content-Type": "application/octet-stream" }, body: big, rendezvous: true }));
    const res = await fetch(`${e.httpUrl}/hc/download`, { headers: { ServiceBusAuthorization: token(e) } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(sha(new Uint8Array(await res.arrayBuffer()))).toBe(sha(big));
  });

  test("listener status codes pass through (418, 502); HEAD has no body", async () => {
    const e = await start();
    let status = 418;
    await httpListener(e, () => ({ status, body: "teapot" }));
    const r1 = await fetch(`${e.httpUrl}/hc`, { headers: { ServiceBusAuthorization: token(e) } });
    expect(r1.status).toBe(418);
    expect(await r1.text()).toBe("teapot");
    status = 502;
    expect((await fetch(`${e.httpUrl}/hc`, { headers: { ServiceBusAuthorization: token(e) } })).status).toBe(502);
    status = 200;
    const head = await fetch(`${e.httpUrl}/hc`, { method: "HEAD", headers: { ServiceBusAuthorization: token(e) } });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  test("504 JSON when the listener never answers", async () => {
    const e = await start({ responseTimeoutMs: 300 });
    await httpListener(e, () => ({ status: 200, silent: true }));
    const res = await fetch(`${e.httpUrl}/hc`, { headers: { ServiceBusAuthorization: token(e) } });
    expect(res.status).toBe(504);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("GatewayTimeout");
    expect(body.error.message).toContain("did not respond in the required time");
  });

  test("502 without listeners (configurable), 401 / 403 / 404 for bad senders", async () => {
    const e = await start({ hybridConnections: [{ path: "hc", rules: [{ name: "listenonly", rights: ["Listen"] }] }] });
    const none = await fetch(`${e.httpUrl}/hc`, { headers: { ServiceBusAuthorization: token(e) } });
    expect(none.status).toBe(502);
    expect(await none.text()).toContain("There are no listeners connected for the endpoint");
    expect((await fetch(`${e.httpUrl}/hc`)).status).toBe(401);
    const r = e.entities.get("hc")?.rules.get("listenonly");
    if (!r) throw new Error("rule missing");
    const listenOnly = createSasToken(`http://127.0.0.1/hc`, r.name, r.primaryKey, Date.now() / 1000 + 60);
    expect((await fetch(`${e.httpUrl}/hc`, { headers: { ServiceBusAuthorization: listenOnly } })).status).toBe(403);
    expect((await fetch(`${e.httpUrl}/nope`, { headers: { ServiceBusAuthorization: token(e, "nope") } })).status).toBe(404);
    await e.stop();
    const e2 = await start({ noListenerStatus: 503 });
    expect((await fetch(`${e2.httpUrl}/hc`, { headers: { ServiceBusAuthorization: token(e2) } })).status).toBe(503);
  });

  test("502 when the listener's control channel drops before answering", async () => {
    const e = await start();
    const l = await httpListener(e, () => ({ status: 200, silent: true }));
    const res = fetch(`${e.httpUrl}/hc`, { headers: { ServiceBusAuthorization: token(e) } });
    for (let i = 0; i < 100 && l.seen.length === 0; i++) await Bun.sleep(10);
    l.ws.close();
    expect((await res).status).toBe(502);
  });

  test("concurrent requests are matched by requestId", async () => {
    const e = await start();
    await httpListener(e, (s) => ({ status: 200, body: s.request.requestTarget ?? "" }));
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => fetch(`${e.httpUrl}/hc/r${i}`, { headers: { ServiceBusAuthorization: token(e) } }).then((r) => r.text())),
    );
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => `/hc/r${i}`));
  });
});

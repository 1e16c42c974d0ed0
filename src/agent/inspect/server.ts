/**
 * The inspector's HTTP server on 127.0.0.1: the page (`page.html`, self-contained), the JSON API
 * (`GET /api/requests`, `GET /api/requests/{id}`, `POST /api/requests/{id}/replay`,
 * `DELETE /api/requests`) and the live list as server-sent events (`GET /api/events`). Every
 * request passes `guard.ts` first (loopback peer, loopback Host, same Origin) or gets 403.
 */
import type { Server } from "bun";
import { refusal } from "./guard.ts";
import { parseEdits, replay, ReplayEntry, ReplayError } from "./replay.ts";
import { detail, summary, type Entry, type InspectStore } from "./store.ts";

export interface InspectServer {
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  stop(): Promise<void>;
}

export interface InspectServerOptions {
  store: InspectStore;
  /** Preferred port (default 4040); when taken, the next free one (up to 20 tries). 0: any. */
  port?: number;
}

let pageText: string | undefined;
async function page(): Promise<string> {
  return (pageText ??= await Bun.file(new URL("./page.html", import.meta.url)).text());
}

const PAGE_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const json = (v: unknown, status = 200) => Response.json(v, { status, headers: { "cache-control": "no-store" } });
const fail = (status: number, code: string, message: string) => json({ error: { code, message } }, status);

function matches(e: Entry, q: URLSearchParams): boolean {
  const method = q.get("method");
  if (method && e.method.toUpperCase() !== method.toUpperCase()) return false;
  const status = q.get("status");
  if (status) {
    const s = String(e.status ?? "");
    if (/^\dxx$/i.test(status) ? s[0] !== status[0] : s !== status) return false;
  }
  const path = q.get("path");
  if (path && !e.target.includes(path)) return false;
  return true;
}

/**
 * Live list: one SSE connection. The store batches per event-loop turn; each batch goes out as
 * one write, and updates (answered, finished) are further held for up to 100 ms so a busy tunnel
 * costs the page a few writes a second, not one per request.
 */
function events(store: InspectStore, signal: AbortSignal): Response {
  const enc = new TextEncoder();
  let unsubscribe = () => {};
  let ping: ReturnType<typeof setInterval> | undefined;
  let flush: ReturnType<typeof setTimeout> | undefined;
  const pending = new Map<number, Entry>();
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      const write = (text: string) => {
        try {
          c.enqueue(enc.encode(text));
        } catch {
          close();
        }
      };
      const event = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
      const close = () => {
        unsubscribe();
        clearInterval(ping);
        clearTimeout(flush);
        try {
          c.close();
        } catch {}
      };
      write(event("hello", { entries: store.limits.entries, body_limit: store.limits.bodyLimit }));
      unsubscribe = store.subscribe(({ added, updated }) => {
        let out = "";
        for (const e of added) {
          pending.delete(e.id);
          out += event("request", summary(e));
        }
        if (out) write(out);
        for (const e of updated) pending.set(e.id, e);
        if (pending.size)
          flush ??= setTimeout(() => {
            flush = undefined;
            let text = "";
            for (const p of pending.values()) text += event("update", summary(p));
            pending.clear();
            if (text) write(text);
          }, 100);
      });
      ping = setInterval(() => write(": ping\n\n"), 15_000);
      signal.addEventListener("abort", close, { once: true });
    },
    cancel() {
      unsubscribe();
      clearInterval(ping);
      clearTimeout(flush);
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no" } });
}

async function handle(req: Request, server: Server<undefined>, store: InspectStore, port: number): Promise<Response> {
  const why = refusal(server.requestIP(req)?.address, req.headers, port);
  if (why) return fail(403, "forbidden", why);
  const url = new URL(req.url);
  const p = url.pathname;
  if (p === "/" || p === "/index.html") {
    if (req.method !== "GET" && req.method !== "HEAD") return fail(405, "method_not_allowed", "Use GET.");
    return new Response(await page(), { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "content-security-policy": PAGE_CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer" } });
  }
  if (p === "/api/events") return events(store, req.signal);
  if (p === "/api/requests") {
    if (req.method === "GET") return json({ requests: store.list().filter((e) => matches(e, url.searchParams)).map(summary) });
    if (req.method === "DELETE") {
      store.clear();
      return new Response(null, { status: 204 });
    }
    return fail(405, "method_not_allowed", "Use GET (or DELETE to clear the list).");
  }
  const m = /^\/api\/requests\/(\d{1,12})(\/replay)?$/.exec(p);
  if (!m) return fail(404, "not_found", `No route ${p}; the API is GET /api/requests, GET /api/requests/{id}, POST /api/requests/{id}/replay.`);
  const e = store.get(Number(m[1]));
  if (!e) return fail(404, "not_found", `No request ${m[1]} (the inspector keeps the last ${store.limits.entries}).`);
  if (!m[2]) {
    if (req.method !== "GET") return fail(405, "method_not_allowed", "Use GET.");
    return json(detail(e));
  }
  if (req.method !== "POST") return fail(405, "method_not_allowed", "Use POST to replay.");
  try {
    const text = await req.text();
    if (text.length > 16 * 1024 * 1024) throw new ReplayError(413, "payload_too_large", "The replay body is larger than 16 MiB.");
    let parsed: unknown;
    if (text.trim()) {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ReplayError(400, "invalid_json", "The replay body is not valid JSON.");
      }
    }
    let recorded: ReplayEntry | undefined;
    const record = (r: ReplayEntry) => {
      recorded = store.add(r);
    };
    try {
      const result = await replay(e, parseEdits(parsed), store.limits.bodyLimit, record);
      return json({ id: e.id, replay_id: recorded?.id ?? null, result });
    } finally {
      if (recorded) store.changed(recorded);
    }
  } catch (err) {
    if (err instanceof ReplayError) return fail(err.status, err.code, err.message);
    throw err;
  }
}

export async function startInspectServer(o: InspectServerOptions): Promise<InspectServer> {
  const first = o.port ?? 4040;
  let server: Server<undefined> | undefined;
  let lastErr: unknown;
  for (let i = 0; i < (first === 0 ? 1 : 20) && !server; i++) {
    const port = first === 0 ? 0 : first + i;
    if (port > 65535) break;
    try {
      let bound = 0;
      server = Bun.serve<undefined>({
        hostname: "127.0.0.1",
        port,
        idleTimeout: 0, // the live list is a long-lived response
        fetch: (req, srv) =>
          handle(req, srv, o.store, bound).catch((err) => fail(500, "internal", `The inspector failed: ${(err as Error).message}`)),
      });
      bound = server.port!;
    } catch (err) {
      lastErr = err;
    }
  }
  if (!server) throw new Error(`the inspector could not listen on 127.0.0.1:${first}${first ? "-" + Math.min(65535, first + 19) : ""}: ${(lastErr as Error)?.message ?? lastErr}`);
  const s = server;
  return {
    port: s.port!,
    url: `http://127.0.0.1:${s.port}`,
    stop: async () => {
      await s.stop(true);
    },
  };
}

/**
 * A local app for the request-log tests: `/ws` is a WebSocket echo, `/slow` answers after
 * `slowMs` (long enough for a client to give up first), every other request goes to `fetch`.
 * `wsEcho` opens a WebSocket, checks one echo and closes it normally (1000), bounded to 10 s.
 */
import { expect } from "bun:test";

export function startEchoApp(o: { slowMs: number; fetch(req: Request): Response | Promise<Response> }) {
  return Bun.serve<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req, server) {
      const path = new URL(req.url).pathname;
      if (path === "/ws" && server.upgrade(req, { data: undefined })) return undefined;
      if (path === "/slow") await Bun.sleep(o.slowMs);
      return o.fetch(req);
    },
    websocket: {
      message(ws, msg) {
        ws.send(msg);
      },
    },
  });
}

/** Sends `msg` (its length shows in the logs' byte counts) and waits for its echo. */
export async function wsEcho(url: string, msg = "ping"): Promise<void> {
  const ws = new WebSocket(url);
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const timer = setTimeout(() => reject(new Error("websocket round trip timed out")), 10_000);
  ws.onopen = () => ws.send(msg);
  ws.onmessage = (e) => {
    expect(String(e.data)).toBe(msg);
    ws.close(1000, "bye");
  };
  ws.onclose = () => {
    clearTimeout(timer);
    resolve();
  };
  ws.onerror = () => reject(new Error("websocket failed"));
  return promise;
}

/**
 * A local app for the hardening tests, in its own process: `bun test/support/roles/ws-origin.ts`.
 * Prints `READY {"port":N}`. WebSocket paths (one behaviour each):
 *   /deaf            accepts, then never reads (paused socket): a slow origin at its extreme
 *   /flood?n=BYTES   accepts, then sends 1 MiB binary messages as fast as the socket takes them
 *   /hello           server speaks first: an Engine.IO-like open packet and "40", then echoes
 *   /reject4401      accepts, then closes at once with 4401 "unauthorized"
 *   /crash           accepts, echoes; the message "crash" drops the TCP connection (no close frame)
 * HTTP: /slow?ms=N answers "done" after N ms; anything else "ok".
 */
const MiB = 1 << 20;
const BLOCK = new Uint8Array(MiB).fill(97);
type D = { path: string; n: number };

const server = Bun.serve<D>({
  hostname: "127.0.0.1",
  port: 0,
  development: false,
  idleTimeout: 120,
  async fetch(req, srv) {
    const u = new URL(req.url);
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
      if (srv.upgrade(req, { data: { path: u.pathname, n: Number(u.searchParams.get("n") ?? 0) } })) return undefined;
      return new Response("upgrade failed", { status: 400 });
    }
    if (u.pathname === "/slow") {
      await Bun.sleep(Number(u.searchParams.get("ms") ?? 2000));
      return new Response("done");
    }
    return new Response("ok");
  },
  websocket: {
    maxPayloadLength: 64 * MiB,
    backpressureLimit: 64 * MiB,
    idleTimeout: 0,
    open(ws) {
      const d = ws.data;
      if (d.path === "/deaf") ws.pause();
      else if (d.path === "/hello") {
        ws.send('0{"sid":"abc","upgrades":[],"pingInterval":25000}');
        ws.send("40");
      } else if (d.path === "/reject4401") ws.close(4401, "unauthorized");
      else if (d.path === "/flood") pump(ws);
    },
    drain(ws) {
      if (ws.data.path === "/flood") pump(ws);
    },
    message(ws, msg) {
      if (ws.data.path === "/crash" && msg === "crash") return ws.terminate();
      ws.send(msg);
    },
  },
});

/** Sends until the socket pushes back (then `drain` calls again) or `n` bytes went out. */
function pump(ws: import("bun").ServerWebSocket<D>): void {
  while (ws.data.n > 0 && ws.readyState === 1) {
    ws.data.n -= MiB;
    if (ws.sendBinary(BLOCK) <= 0) return;
  }
}

console.log(`READY ${JSON.stringify({ port: server.port })}`);
process.on("SIGTERM", () => process.exit(0));

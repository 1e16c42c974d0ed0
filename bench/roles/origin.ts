/**
 * The one origin app every row talks to (direct, nginx, azhexgate and the peer tunnels):
 *   GET /small      13 bytes ("Hello, world!")
 *   GET /mib        1 MiB
 *   GET /down?n=N   N bytes, streamed in 1 MiB chunks with pull()
 *   POST /up        counts the body's bytes, answers the count
 *   GET /ws         WebSocket echo
 * Prints `READY {"port":N}` on stdout once listening. Port from argv[2] (0 = any).
 */
const MiB = 1 << 20;
const SMALL = new TextEncoder().encode("Hello, world!");
const BLOCK = new Uint8Array(MiB).fill(120);

const server = Bun.serve<undefined>({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  development: false,
  maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  idleTimeout: 60,
  async fetch(req, srv) {
    const u = new URL(req.url);
    switch (u.pathname) {
      case "/small":
        return new Response(SMALL);
      case "/mib":
        return new Response(BLOCK);
      case "/down": {
        // pull-based: one 1 MiB chunk per pull, so a slow reader holds the origin's memory down
        const total = Number(u.searchParams.get("n") ?? 0);
        let left = total;
        return new Response(
          new ReadableStream(
            {
              pull(c) {
                if (left <= 0) return c.close();
                const n = Math.min(MiB, left);
                left -= n;
                c.enqueue(BLOCK.subarray(0, n));
              },
            },
            { highWaterMark: 0 },
          ),
          { headers: { "content-length": String(total) } },
        );
      }
      case "/up": {
        let n = 0;
        if (req.body) for await (const c of req.body) n += c.length;
        return new Response(String(n));
      }
      case "/ws":
        if (srv.upgrade(req)) return undefined;
        return new Response("upgrade required", { status: 426 });
      default:
        return new Response("not found", { status: 404 });
    }
  },
  websocket: {
    maxPayloadLength: 64 * MiB,
    idleTimeout: 0,
    message(ws, msg) {
      ws.send(msg);
    },
  },
});
console.log(`READY ${JSON.stringify({ port: server.port })}`);
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});

export {};

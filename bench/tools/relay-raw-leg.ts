/**
 * What re-framing the bytes ourselves would save the relay emulator (issue 13), measured on a
 * prototype, not the emulator: a relay process whose sender leg is a Bun.serve WebSocket and
 * whose listener leg is either another Bun.serve WebSocket (`ws`: what the emulator does, Bun's
 * uWS parses and unmasks) or a raw TCP socket (`raw`: our own frame parser, the payload unmasked
 * by src/ws/mask.ts's WebAssembly SIMD loop, then handed to the sender leg as one message). Bytes
 * are pumped listener → sender (a tunnel download) in 256 KiB binary messages; prints the relay's
 * CPU (all threads, /proc/PID/task/* /schedstat) per MiB, alternating the two kinds.
 *
 *   bun bench/tools/relay-raw-leg.ts [--mib 256] [--runs 3]
 *
 * Prototype limits: one connection, binary data frames one way; control frames are skipped, no
 * close handshake, no fault switches.
 */
import { createHash } from "node:crypto";
import { threadCpuNs } from "../lib/proc.ts";
import type { ServerWebSocket, Socket } from "bun";
import { maskScratch, scratch } from "../../src/ws/mask.ts";

const args = process.argv.slice(2);
const opt = (n: string, d: string) => {
  const i = args.indexOf(`--${n}`);
  return i >= 0 ? args[i + 1]! : d;
};

if (args[0] === "--serve") serve();
else await measure();

/** The relay process: prints `READY {"ws":port,"raw":port}`. */
function serve(): void {
  let sender: ServerWebSocket<{ side: string }> | undefined;
  let wsLeg: ServerWebSocket<{ side: string }> | undefined;
  let rawLeg: Socket<undefined> | undefined;
  const srv = Bun.serve<{ side: string }>({
    port: 0,
    fetch: (req, s) => (s.upgrade(req, { data: { side: new URL(req.url).pathname } }) ? undefined : new Response("no", { status: 400 })),
    websocket: {
      maxPayloadLength: 64 << 20,
      backpressureLimit: 32 << 20,
      perMessageDeflate: false,
      idleTimeout: 0,
      open(ws) {
        ws.binaryType = "uint8array";
        if (ws.data.side === "/s") sender = ws;
        else wsLeg = ws;
      },
      message(ws, m) {
        if (ws !== wsLeg || !sender) return;
        if (sender.sendBinary(m as unknown as Uint8Array) === -1) ws.pause();
      },
      drain(ws) {
        if (ws === sender) rawLeg ? rawLeg.resume() : wsLeg?.resume();
      },
    },
  });
  // raw listener leg: handshake, then frames parsed here
  let head = "";
  let upgraded = false;
  const hdr = new Uint8Array(14);
  let have = 0; // header bytes read
  let payload = -1; // payload length of the current frame, -1 while its header is incomplete
  let filled = 0;
  let start = 0; // where the current frame's payload starts in buf
  let msgLen = 0; // bytes of the current message assembled in buf
  let buf = scratch(1 << 20)!;
  const headerSize = (): number => {
    if (have < 2) return 2;
    const b = hdr[1]! & 127;
    return 2 + (b === 126 ? 2 : b === 127 ? 8 : 0) + 4;
  };
  const ls = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        rawLeg = s;
      },
      data(s, d) {
        if (!upgraded) {
          head += d.toString("latin1");
          if (!head.includes("\r\n\r\n")) return;
          const key = /sec-websocket-key: *([^\r]*)/i.exec(head)![1]!.trim();
          const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
          s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
          upgraded = true;
          return;
        }
        let i = 0;
        while (i < d.length) {
          if (payload < 0) {
            while (have < headerSize() && i < d.length) hdr[have++] = d[i++]!;
            if (have < headerSize()) return;
            const b = hdr[1]! & 127;
            payload = b === 126 ? (hdr[2]! << 8) | hdr[3]! : b === 127 ? Number(new DataView(hdr.buffer).getBigUint64(2)) : b;
            start = msgLen;
            filled = 0;
            if (buf.length < msgLen + payload) buf = scratch(msgLen + payload)!;
          }
          const n = Math.min(payload - filled, d.length - i);
          buf.set(d.subarray(i, i + n), start + filled);
          filled += n;
          i += n;
          if (filled < payload) return;
          const size = headerSize();
          maskScratch(buf, start, start + payload, hdr.subarray(size - 4, size));
          const fin = (hdr[0]! & 0x80) !== 0;
          const control = (hdr[0]! & 0x0f) >= 8;
          msgLen = control ? start : start + payload;
          have = 0;
          payload = -1;
          if (!control && fin) {
            if (sender?.sendBinary(buf.subarray(0, msgLen)) === -1) s.pause();
            msgLen = 0;
          }
        }
      },
    },
  });
  console.log(`READY ${JSON.stringify({ ws: srv.port, raw: ls.port })}`);
}

async function measure(): Promise<void> {
  const MiB = 1 << 20;
  const total = Number(opt("mib", "256")) * MiB;
  const size = 256 * 1024;
  for (let run = 0; run < Number(opt("runs", "3")); run++) {
    for (const kind of ["ws", "raw"] as const) {
      const proc = Bun.spawn(["bun", import.meta.path, "--serve"], { stdout: "pipe", stderr: "inherit" });
      const reader = proc.stdout.getReader();
      let out = "";
      while (!out.includes("\n")) out += new TextDecoder().decode((await reader.read()).value);
      const ports = JSON.parse(out.slice(out.indexOf("{"), out.indexOf("\n")));
      const cpuNs = () => threadCpuNs(proc.pid);
      const open = (url: string) =>
        new Promise<WebSocket>((resolve, reject) => {
          const w = new WebSocket(url);
          w.binaryType = "arraybuffer";
          w.onopen = () => resolve(w);
          w.onerror = () => reject(new Error(`cannot open ${url}`));
        });
      const sender = await open(`ws://127.0.0.1:${ports.ws}/s`);
      const leg = await open(kind === "raw" ? `ws://127.0.0.1:${ports.raw}/l` : `ws://127.0.0.1:${ports.ws}/l`);
      const pump = async (bytes: number) => {
        const data = new Uint8Array(size).fill(7);
        let got = 0;
        const done = Promise.withResolvers<void>();
        sender.onmessage = (e) => {
          const m = new Uint8Array(e.data as ArrayBuffer);
          if (m.length !== size || m[size - 1] !== 7) done.reject(new Error(`message of ${m.length} B, last byte ${m[size - 1]}`));
          got += m.length;
          if (got >= bytes) done.resolve();
        };
        for (let sent = 0; sent < bytes; sent += size) {
          while (leg.bufferedAmount > 4 * size) await Bun.sleep(0);
          leg.send(data);
        }
        await done.promise;
      };
      await pump(16 * MiB);
      const c0 = cpuNs();
      const t0 = performance.now();
      await pump(total);
      const secs = (performance.now() - t0) / 1000;
      console.log(`${kind.padEnd(3)} ${(total / 1e6 / secs).toFixed(0).padStart(5)} MB/s, relay ${((cpuNs() - c0) / 1e6 / (total / MiB)).toFixed(3)} ms CPU per MiB`);
      sender.close();
      leg.close();
      proc.kill();
      await proc.exited;
    }
  }
  process.exit(0);
}

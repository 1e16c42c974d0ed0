/**
 * The relay emulator's own cost, alone: the emulator in its own process (bench/roles/relay.ts), one
 * listener and one sender (Bun's WebSocket client) in this one, bytes pumped through one relayed
 * connection. Prints the emulator's CPU (all its threads, from /proc/PID/task/* /schedstat, ns) per
 * MiB and per message, and MB/s.
 *
 *   bun bench/tools/relay-pump.ts [--mib 512] [--size 262144] [--dir down|up] [--msgs 20000]
 *
 * `down` = listener → sender (a tunnel download: agent → gateway), `up` = sender → listener.
 * `--msgs`: small 64 B echo round trips (sender → listener → sender) after the bulk pump.
 */
import { threadCpuNs } from "../lib/proc.ts";
import { join } from "node:path";
import { createSasToken } from "../../src/hc/sas.ts";

const args = process.argv.slice(2);
const opt = (n: string, d: string) => {
  const i = args.indexOf(`--${n}`);
  return i >= 0 ? args[i + 1]! : d;
};
const MiB = 1 << 20;
const total = Number(opt("mib", "512")) * MiB;
const size = Number(opt("size", String(256 * 1024)));
const dir = opt("dir", "down");
const smallCount = Number(opt("msgs", "20000"));

const proc = Bun.spawn(["bun", join(import.meta.dir, "../roles/relay.ts"), "0", "hc"], { stdout: "pipe", stderr: "inherit" });
const reader = proc.stdout.getReader();
let out = "";
while (!out.includes("\n")) {
  const { value, done } = await reader.read();
  if (done) throw new Error("relay exited");
  out += new TextDecoder().decode(value);
}
const ready = JSON.parse(out.slice(out.indexOf("{"), out.indexOf("\n")));
const base = `ws://127.0.0.1:${ready.port}`;
const token = createSasToken(`http://127.0.0.1:${ready.port}/hc`, ready.keyName, ready.key, Math.floor(Date.now() / 1000) + 3600);
const q = `sb-hc-token=${encodeURIComponent(token)}`;

/** CPU ns of every thread of the relay process. */
const relayCpuNs = () => threadCpuNs(proc.pid);

function opened(ws: WebSocket): Promise<WebSocket> {
  ws.binaryType = "arraybuffer";
  return new Promise((res, rej) => {
    ws.onopen = () => res(ws);
    ws.onerror = () => rej(new Error("ws error"));
  });
}

const control = await opened(new WebSocket(`${base}/$hc/hc?sb-hc-action=listen&${q}`));
const legP = new Promise<WebSocket>((res) => {
  control.onmessage = (ev) => {
    const m = JSON.parse(String(ev.data));
    if (m.accept) opened(new WebSocket(m.accept.address)).then(res);
  };
});
const sender = await opened(new WebSocket(`${base}/$hc/hc?sb-hc-action=connect&${q}`));
const leg = await legP;

async function pump(from: WebSocket, to: WebSocket, bytes: number, chunk: number): Promise<void> {
  const payload = new Uint8Array(chunk).fill(7);
  let got = 0;
  const done = Promise.withResolvers<void>();
  to.onmessage = (ev) => {
    got += (ev.data as ArrayBuffer).byteLength;
    if (got >= bytes) done.resolve();
  };
  let sent = 0;
  while (sent < bytes) {
    while (from.bufferedAmount > 4 * chunk) await Bun.sleep(0);
    from.send(payload);
    sent += chunk;
  }
  await done.promise;
}

await pump(dir === "down" ? leg : sender, dir === "down" ? sender : leg, 16 * MiB, size); // warm-up
const c0 = relayCpuNs();
const t0 = performance.now();
await pump(dir === "down" ? leg : sender, dir === "down" ? sender : leg, total, size);
const secs = (performance.now() - t0) / 1000;
const cpuMs = (relayCpuNs() - c0) / 1e6;
console.log(`bulk ${dir} ${total / MiB} MiB in ${size} B messages: ${(total / 1e6 / secs).toFixed(0)} MB/s, relay ${(cpuMs / (total / MiB)).toFixed(3)} ms CPU/MiB`);

if (smallCount > 0) {
  leg.onmessage = (ev) => leg.send(ev.data as ArrayBuffer);
  const msg = new Uint8Array(64);
  let left = smallCount;
  const done = Promise.withResolvers<void>();
  const c1 = relayCpuNs();
  const t1 = performance.now();
  // 16 in flight: per-message cost, not one round trip at a time
  sender.onmessage = () => {
    if (--left <= 0) done.resolve();
    else if (left >= 16) sender.send(msg);
  };
  for (let i = 0; i < 16; i++) sender.send(msg);
  await done.promise;
  const s = (performance.now() - t1) / 1000;
  const us = (relayCpuNs() - c1) / 1e3 / (smallCount * 2);
  console.log(
    `small: ${smallCount} echoes of 64 B, ${(smallCount / s).toFixed(0)} round trips/s, relay ${us.toFixed(2)} µs CPU per relayed message`,
  );
}
sender.close();
control.close();
proc.kill();
await proc.exited;
process.exit(0);

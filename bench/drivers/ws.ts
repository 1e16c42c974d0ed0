/**
 * WebSocket load driver (its own process).
 *   bun bench/drivers/ws.ts echo URL HOST CONNS SIZE DURATION_MS
 *     closed loop, one message in flight per connection; prints `RESULT {"msgs","seconds","p50_ms","p99_ms","errors"}`
 *   bun bench/drivers/ws.ts idle URL HOST CONNS HOLD_MS
 *     opens CONNS sockets (200 at a time), prints `READY {"open"}`, holds them HOLD_MS, closes, prints RESULT.
 * HOST "-" means no Host header override.
 * Env BENCH_CPU_GROUPS ({"name": pid, …}): echo also reports `cpu` (CPU seconds each process tree
 * used during the measuring window, from /proc), so CPU per message excludes set-up and warm-up.
 */
import { cpuOf } from "../lib/proc.ts";

const cpuGroups = JSON.parse(process.env.BENCH_CPU_GROUPS || "{}") as Record<string, number>;
const [mode, url, host, connsS, a, b] = process.argv.slice(2);
const conns = Number(connsS);
const headers = host && host !== "-" ? { Host: host } : undefined;
const deadline = Date.now() + 120_000; // hard bound on the whole driver
setTimeout(() => {
  console.error("ERROR driver exceeded 150 s");
  process.exit(1);
}, 150_000).unref();
process.on("unhandledRejection", (e) => {
  console.error(`ERROR ${(e as Error)?.message ?? e}`);
  process.exit(1);
});

function open(): Promise<WebSocket> {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url!, headers ? ({ headers } as unknown as string[]) : undefined);
    ws.binaryType = "arraybuffer";
    const t = setTimeout(() => {
      ws.close();
      rej(new Error("WebSocket open timed out after 15 s"));
    }, 15_000);
    ws.onopen = () => {
      clearTimeout(t);
      res(ws);
    };
    ws.onerror = () => {
      clearTimeout(t);
      rej(new Error("WebSocket failed to open"));
    };
  });
}

function pct(s: Float64Array, n: number, p: number): number {
  return n ? s[Math.min(n - 1, Math.floor((p / 100) * n))]! : NaN;
}

if (mode === "echo") {
  const size = Number(a);
  const durationMs = Number(b);
  const payload = new Uint8Array(size).fill(97);
  const socks = await Promise.all(Array.from({ length: conns }, open));
  const lat = new Float64Array(5_000_000);
  let n = 0;
  let msgs = 0;
  let errors = 0;
  let measuring = false;
  let running = true;
  let cpu0: Record<string, number> = {};
  let cpu1: Record<string, number> = {};
  await new Promise<void>((done) => {
    let live = socks.length;
    for (const ws of socks) {
      let sent = 0;
      let got = 0;
      let t0 = 0;
      const send = () => {
        t0 = performance.now();
        sent = 0;
        got = 0;
        ws.send(payload);
      };
      ws.onmessage = (ev) => {
        got += (ev.data as ArrayBuffer).byteLength ?? 0;
        if (got < size) return; // a proxy may split a message (it must not, but count bytes to be safe)
        if (measuring) {
          msgs++;
          if (n < lat.length) lat[n++] = performance.now() - t0;
        }
        if (running) send();
        else if (--live === 0) done();
      };
      ws.onclose = () => {
        if (running) errors++;
      };
      void sent;
      send();
    }
    setTimeout(() => {
      measuring = true;
      cpu0 = cpuOf(cpuGroups);
      const t = performance.now();
      setTimeout(() => {
        measuring = false;
        running = false;
        cpu1 = cpuOf(cpuGroups);
        (globalThis as any).__secs = (performance.now() - t) / 1000;
        setTimeout(done, 2000); // do not wait forever for the last echoes
      }, durationMs);
    }, Math.min(1000, durationMs / 4));
  });
  const s = lat.subarray(0, n).sort();
  console.log(`RESULT ${JSON.stringify({ msgs, seconds: (globalThis as any).__secs, p50_ms: pct(s, n, 50), p99_ms: pct(s, n, 99), errors, cpu: Object.fromEntries(Object.keys(cpu0).map((k) => [k, cpu1[k]! - cpu0[k]!])) })}`);
  for (const ws of socks) ws.close();
  process.exit(0);
} else if (mode === "idle") {
  const holdMs = Number(a);
  const socks: WebSocket[] = [];
  let failed = 0;
  for (let i = 0; i < conns && Date.now() < deadline; i += 200) {
    const batch = await Promise.allSettled(Array.from({ length: Math.min(200, conns - i) }, open));
    for (const r of batch) r.status === "fulfilled" ? socks.push(r.value) : failed++;
    if (failed > 50) break;
  }
  console.log(`READY ${JSON.stringify({ open: socks.length, failed })}`);
  let closedEarly = 0;
  for (const ws of socks) ws.onclose = () => closedEarly++;
  await Bun.sleep(holdMs);
  console.log(`RESULT ${JSON.stringify({ open: socks.length, failed, closedEarly })}`);
  for (const ws of socks) ws.close();
  process.exit(0);
} else {
  console.error("usage: ws.ts echo|idle …");
  process.exit(2);
}

export {};

/**
 * Soak (issue 12, scope 8) — not part of the test suite:
 *   bun bench/soak.ts [--requests 100000] [--conns 256] [--ws 1000] [--seconds 60]
 * One tunnel, every part its own process (relay emulator, gateway, agent, the bench origin).
 * HTTP: `requests` GET /small at `conns` concurrent keep-alive connections (fetch from this
 * process); WebSockets: `ws` sockets each sending a message every ~500 ms for `seconds` and
 * checking every echo, in order. Prints requests, errors, p50/p99 and per-process RSS (baseline,
 * peak, final after the load and 10 s of rest) as JSON.
 */
import { rss, sampleRss, spawn, stopAll } from "./lib/proc.ts";
import { startTunnelProcs } from "./lib/tunnel-procs.ts";
import { type WsConnection } from "../src/ws/client.ts";
import { connectWebSocket } from "../src/ws/connect.ts";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const REQUESTS = arg("requests", 100_000);
const CONNS = arg("conns", 256);
const WS = arg("ws", 1000);
const SECONDS = arg("seconds", 60);
const MiB = 1 << 20;
/** p-th percentile of sorted values (nearest rank). */
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
const root = new URL("../", import.meta.url).pathname;

const hc = "hc-soak";
const id = "soak";
try {
  const origin = await spawn("origin", ["bun", "bench/roles/origin.ts", "0"], { cwd: root });
  const { relay, gateway, startAgent } = await startTunnelProcs({ id, hc, origin: `http://127.0.0.1:${origin.ready.port}` });
  const agent = await startAgent();
  const base = `http://127.0.0.1:${gateway.ready.port}`;
  const host = String(gateway.ready.host);
  const pids = { gateway: gateway.pid, agent: agent.pid, relay: relay.pid, origin: origin.pid };
  const mb = (n: number) => Math.round(n / MiB);
  // warm up, then the baseline
  for (let i = 0; i < 50; i++) await (await fetch(base + "/small", { headers: { host } })).text();
  await Bun.sleep(1000);
  const baseline = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, mb(rss(p))]));
  const sampler = sampleRss(pids, 250);

  // WebSockets: open them all, then each sends a numbered message every ~500 ms
  let wsErrors = 0;
  let wsMessages = 0;
  const sockets: WsConnection[] = [];
  const opening: Promise<void>[] = [];
  for (let i = 0; i < WS; i++) {
    opening.push(
      connectWebSocket(`ws://127.0.0.1:${gateway.ready.port}/ws`, { headers: { host }, proxy: null }).then(
        (c) => {
          let expect = 0;
          c.on("message", (d) => {
            const n = Number(typeof d === "string" ? d : new TextDecoder().decode(d));
            if (n !== expect) wsErrors++;
            expect = n + 1;
            wsMessages++;
          });
          c.on("error", () => {});
          sockets.push(c);
        },
        () => void wsErrors++,
      ),
    );
    if (i % 100 === 99) await Promise.all(opening.splice(0));
  }
  await Promise.all(opening);
  let wsRunning = true;
  const wsLoop = (async () => {
    let seq = 0;
    const t0 = Date.now();
    while (wsRunning && Date.now() - t0 < SECONDS * 1000) {
      for (const c of sockets) if (c.readyState === "open") c.send(String(seq));
      seq++;
      await Bun.sleep(500);
    }
  })();

  // HTTP: REQUESTS at CONNS concurrency
  const lat: number[] = [];
  let httpErrors = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONNS }, async () => {
      while (next < REQUESTS) {
        next++;
        const s = performance.now();
        try {
          const r = await fetch(base + "/small", { headers: { host } });
          const body = await r.text();
          if (r.status !== 200 || body !== "Hello, world!") httpErrors++;
        } catch {
          httpErrors++;
        }
        lat.push(performance.now() - s);
      }
    }),
  );
  const httpSeconds = (performance.now() - t0) / 1000;
  await wsLoop;
  wsRunning = false;
  await Bun.sleep(1500); // the last echoes
  const expectedMessages = wsMessages; // counted as received
  for (const c of sockets) c.close(1000, "done");
  await Bun.sleep(2000);
  const peak = sampler.stop();
  await Bun.sleep(10_000);
  const final = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, mb(rss(p))]));
  lat.sort((a, b) => a - b);
  console.log(
    JSON.stringify(
      {
        http: { requests: lat.length, errors: httpErrors, conns: CONNS, seconds: +httpSeconds.toFixed(1), rps: Math.round(lat.length / httpSeconds), p50_ms: +percentile(lat, 50).toFixed(2), p99_ms: +percentile(lat, 99).toFixed(2) },
        ws: { sockets: sockets.length, of: WS, seconds: SECONDS, messages_echoed: expectedMessages, errors: wsErrors },
        rss_mb: { baseline, peak: Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, mb(v)])), final_after_10s: final },
      },
      null,
      2,
    ),
  );
} finally {
  await stopAll();
}
process.exit(0);

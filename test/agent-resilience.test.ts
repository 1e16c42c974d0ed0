/**
 * The supervised agent end to end, real servers and real time (bounded): a dropped control
 * channel comes back and serves fresh rendezvous; 5-second listener tokens are renewed in place
 * while requests keep flowing; a deleted hybrid connection is claimed again; graceful stop lets a
 * slow download finish while new requests are refused, and a second stop is immediate.
 * Set AZHEXGATE_TIMINGS=1 to print the measured timings.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { superviseAgent, type SupervisorHandle } from "../src/agent/supervisor.ts";
import { startAgentRelay, type AgentRelay } from "./support/agent-relay.ts";
import { startStack } from "./support/stack.ts";
import { StateLog } from "./support/states.ts";

const CHUNK = 64 * 1024;
const SLOW_CHUNKS = 15; // × 100 ms ≈ 1.5 s

let fx: AgentRelay | undefined;
let sup: SupervisorHandle | undefined;

afterEach(async () => {
  await sup?.stop({ graceMs: 0 });
  await sup?.stop();
  sup = undefined;
  await fx?.stop();
  fx = undefined;
});

function timing(name: string, ms: number): void {
  if (process.env.AZHEXGATE_TIMINGS) console.log(`timing ${name}: ${Math.round(ms)} ms`);
}

/** Origin: `/slow?n=` streams n chunks of 64 KiB, one per 100 ms; anything else answers its path. */
function origin(): Parameters<typeof Bun.serve>[0] {
  return {
    fetch(req: Request) {
      const url = new URL(req.url);
      if (url.pathname !== "/slow") return new Response(`hello ${url.pathname}`);
      const n = Number(url.searchParams.get("n") ?? SLOW_CHUNKS);
      let i = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (i >= n) return c.close();
          if (i > 0) await Bun.sleep(100);
          c.enqueue(new Uint8Array(CHUNK).fill(i++ & 0xff));
        },
      });
      return new Response(body, { headers: { "content-length": String(n * CHUNK) } });
    },
  };
}

async function start(ttlMs?: number, extra: Partial<Parameters<typeof superviseAgent>[0]> = {}) {
  fx = await startAgentRelay(origin(), { ttlMs });
  const log = new StateLog();
  const events: string[] = [];
  sup = superviseAgent({
    connect: fx.connect,
    renew: fx.renew,
    origin: `http://127.0.0.1:${fx.origin.port}`,
    hostHeader: "rewrite",
    onState: log.push,
    log: (e) => events.push(e),
    ...extra,
  });
  await log.next("online");
  return { f: fx, s: sup, log, events };
}

async function get(f: AgentRelay, path: string): Promise<{ status: number; text: string; error: string | null }> {
  const res = await fetch(f.url + path);
  return { status: res.status, text: await res.text(), error: res.headers.get("x-azhexgate-error") };
}

describe("supervised agent (real time)", () => {
  test("a dropped control channel (1011, then abrupt) is re-established and serves fresh rendezvous", async () => {
    const { f, log } = await start();
    expect(await get(f, "/before")).toMatchObject({ status: 200, text: "hello /before" });
    for (const how of [undefined, "abrupt" as const]) {
      const t0 = performance.now();
      expect(f.relay.faults.dropControlChannels(f.hcPath, how)).toBe(1);
      const r = await log.next("reconnecting");
      expect(r.code).toBe(how ? "network" : "server_error");
      expect(r.inMs).toBeLessThanOrEqual(2000);
      await log.next("online");
      timing(`reconnect after drop (${how ?? "1011"}, backoff ${r.inMs} ms)`, performance.now() - t0);
      expect(f.relay.listenerCount(f.hcPath)).toBe(1);
      await f.restartGateway(); // no warm sessions: the request needs a new rendezvous
      expect(await get(f, "/after")).toMatchObject({ status: 200, text: "hello /after" });
    }
    expect(f.calls.connect).toBe(1);
  });

  test("rttMs: the round trip over a tunnel session is measured while online", async () => {
    const { f, s } = await start(undefined, { tickMs: 20, rttEveryMs: 40 });
    expect(s.rttMs).toBeUndefined(); // no session yet: nothing to measure
    expect(await get(f, "/warm")).toMatchObject({ status: 200 });
    await waitFor(() => s.rttMs !== undefined);
    timing("tunnel rtt", s.rttMs!);
    expect(s.rttMs!).toBeGreaterThan(0);
    expect(s.rttMs!).toBeLessThan(1000);
  });

  test("5-second listener tokens are renewed in place, three times or more, without losing a request", async () => {
    const { f, log, events } = await start(5000);
    const t0 = performance.now();
    let ok = 0;
    const failures: string[] = [];
    let lastSwap = performance.now();
    let gateways = 1;
    while (performance.now() - t0 < 16_000) {
      if (performance.now() - lastSwap > 2000) {
        await f.restartGateway(); // a fresh gateway must dial through the (renewed) control channel
        lastSwap = performance.now();
        gateways++;
      }
      const r = await get(f, `/r${ok}`);
      if (r.status === 200 && r.text === `hello /r${ok}`) ok++;
      else failures.push(`${r.status} ${r.error} ${r.text.slice(0, 80)}`);
    }
    timing(`renewal run: ${ok} requests, ${gateways} gateways, ${f.calls.renew.length} renewals`, performance.now() - t0);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect(f.calls.renew.length).toBeGreaterThanOrEqual(3);
    expect(f.calls.renew.every((c) => !c.rejected)).toBe(true);
    expect(events.filter((e) => e === "token renewed").length).toBe(f.calls.renew.length);
    expect(log.of("reconnecting")).toEqual([]); // the control channel never dropped
    expect(f.calls.connect).toBe(1);
  }, 30_000);

  test("the hybrid connection deleted (gateway restarted and lost it) → connect() again, then the tunnel serves", async () => {
    const { f, log } = await start();
    const t0 = performance.now();
    expect(f.relay.faults.deleteHc(f.hcPath)).toBe(true);
    await f.restartGateway();
    expect(await log.next("reconnecting")).toMatchObject({ code: "entity_deleted" });
    expect(await log.next("online")).toMatchObject({ sessionId: "s-2", publicUrl: f.url });
    timing("re-claim after HC deleted", performance.now() - t0);
    expect(f.calls.connect).toBe(2);
    expect(await get(f, "/again")).toMatchObject({ status: 200, text: "hello /again" });
  });

  test("graceful stop: a slow download completes with all bytes; a new request is refused (502 tunnel_offline)", async () => {
    const { f, s, log } = await start();
    const res = await fetch(f.url + "/slow");
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = await reader.read(); // the download is in flight
    let bytes = first.value?.length ?? 0;
    expect(s.inFlight).toBe(1);

    const t0 = performance.now();
    let stopped = false;
    const stopping = s.stop({ graceMs: 10_000 }).then(() => (stopped = true));
    expect(await log.next("stopping")).toMatchObject({ inFlight: 1, graceMs: 10_000 });
    const refused = await get(f, "/new");
    expect(refused).toMatchObject({ status: 502, error: "tunnel_offline" });
    const refusedAt = performance.now() - t0;
    await waitFor(() => f.relay.listenerCount(f.hcPath) === 0);
    expect(await get(f, "/later")).toMatchObject({ status: 502, error: "tunnel_offline" });

    let mismatched = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (let i = 0; i < value.length; i += 4096) if (value[i] !== Math.floor((bytes + i) / CHUNK)) mismatched++;
      bytes += value.length;
    }
    expect(bytes).toBe(SLOW_CHUNKS * CHUNK);
    expect(mismatched).toBe(0);
    await stopping;
    const elapsed = performance.now() - t0;
    timing(`graceful stop (new request refused after ${Math.round(refusedAt)} ms)`, elapsed);
    expect(stopped).toBe(true);
    expect(elapsed).toBeLessThan(5000);
    expect(s.state).toEqual({ state: "offline", reason: "stopped" });
    expect(await s.closed).toBeNull();
  });

  test("a second stop() closes at once, cutting the download", async () => {
    const { f, s } = await start();
    const res = await fetch(f.url + "/slow?n=100"); // ≈ 10 s
    const reader = res.body!.getReader();
    await reader.read();
    const first = s.stop({ graceMs: 30_000 });
    await Bun.sleep(0);
    const t0 = performance.now();
    await s.stop();
    await first;
    const elapsed = performance.now() - t0;
    timing("second stop", elapsed);
    expect(elapsed).toBeLessThan(1000);
    expect(s.state.state).toBe("offline");
    let bytes = 0;
    const cut = await (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return false;
        bytes += value.length;
      }
    })().catch(() => true);
    expect(cut || bytes < 99 * CHUNK).toBe(true);
  });

  test("startAgent: drain(graceMs) finishes the in-flight download, then closes; a stop() during a drain cuts it", async () => {
    const stack = await startStack(origin());
    try {
      const res = await fetch(stack.url + "/slow?n=5");
      const reader = res.body!.getReader();
      let bytes = (await reader.read()).value?.length ?? 0;
      expect(stack.agent.inFlight).toBe(1);
      const draining = stack.agent.drain(10_000);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.length;
      }
      expect(bytes).toBe(5 * CHUNK);
      expect(await draining).toBe(0); // nothing was cut
      expect(stack.agent.sessions.size).toBe(0);
      expect(stack.relay.listenerCount(`hc-${stack.id}`)).toBe(0);
    } finally {
      await stack.stop();
    }
    const stack2 = await startStack(origin());
    try {
      const res = await fetch(stack2.url + "/slow?n=100");
      await res.body!.getReader().read();
      const draining = stack2.agent.drain(30_000);
      await stack2.agent.stop();
      expect(await draining).toBe(1); // one stream cut
    } finally {
      await stack2.stop();
    }
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}

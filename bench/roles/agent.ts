/**
 * Agent role: `startAgent` in its own process, forwarding to the bench origin.
 *   bun bench/roles/agent.ts
 * Env: BENCH_RELAY, BENCH_KEY_NAME, BENCH_KEY, BENCH_HC, BENCH_ORIGIN (http://127.0.0.1:PORT);
 * BENCH_INSPECT=1 captures every request for the inspector (served on 127.0.0.1, any port), as
 * `azhexgate start` does by default; unset, the agent runs without it (`--no-inspect`). Variants
 * that take the capture apart (bench/results/README.md, inspector): `noop` (page server, hook
 * returns nothing), `noserver` (capture without the page server), `ring1` (a one-entry ring: no
 * retention), `bare` (entries made, response / chunk / finish do nothing), `nochunk` (no body tap),
 * `noresp` / `nofinish` (that one step does nothing).
 * BENCH_SLOWDOWN_AGENT_US=N busy-waits N µs of CPU per request (in the `onRequest` callback, which
 * the agent calls once per finished request): the deliberate slowdown that shows `bench:ci`'s CPU
 * floors catch a slower agent hot path (bench/results/README.md). Bench only; src/ has no such hook.
 * Prints `READY {}` once its control channel is open (the listener is registered at the relay).
 */
import { startAgent } from "../../src/agent/agent.ts";
import { HttpCapture, Inspector } from "../../src/agent/inspect/capture.ts";
import { startInspectServer } from "../../src/agent/inspect/server.ts";
import { InspectStore } from "../../src/agent/inspect/store.ts";
import { resolveNamespace } from "../../src/hc/address.ts";
import { sasTokenProvider } from "../../src/hc/tokens.ts";

const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`agent role: ${k} is not set`);
  return v;
};
const X = process.env.BENCH_INSPECT ?? "";
const store = X ? new InspectStore(X === "ring1" ? { entries: 1, bodyLimit: 65536, wsMessages: 50 } : undefined) : undefined;
const inspectServer = store && X !== "noserver" ? await startInspectServer({ store, port: 0 }) : undefined;
const insp = store ? new Inspector(store) : undefined;
if (insp && X === "noop") (insp as unknown as Record<string, unknown>).begin = () => undefined;
const proto = HttpCapture.prototype as unknown as Record<string, unknown>;
if (X === "nochunk" || X === "bare") proto.chunk = () => {};
if (X === "bare") proto.response = proto.finish = () => {};
if (X === "noresp") proto.response = () => {};
if (X === "nofinish") proto.finish = () => {};
const slowUs = Number(process.env.BENCH_SLOWDOWN_AGENT_US ?? 0);
const spin = () => {
  const end = performance.now() + slowUs / 1000;
  while (performance.now() < end);
};
const agent = await startAgent({
  ...(insp ? { inspect: insp } : {}),
  ...(slowUs > 0 ? { onRequest: spin } : {}),
  endpoint: resolveNamespace(env("BENCH_RELAY")),
  hcPath: env("BENCH_HC"),
  token: sasTokenProvider(env("BENCH_KEY_NAME"), env("BENCH_KEY")),
  origin: env("BENCH_ORIGIN"),
  hostHeader: "rewrite",
});
console.log(`READY ${JSON.stringify({ t: performance.timeOrigin + performance.now() })}`);
const stop = async () => {
  await agent.stop().catch(() => {});
  await inspectServer?.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

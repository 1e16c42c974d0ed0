/**
 * Agent role: `startAgent` in its own process, forwarding to the bench origin.
 *   bun bench/roles/agent.ts
 * Env: BENCH_RELAY, BENCH_KEY_NAME, BENCH_KEY, BENCH_HC, BENCH_ORIGIN (http://127.0.0.1:PORT);
 * BENCH_INSPECT=1 captures every request for the inspector (served on 127.0.0.1, any port), as
 * `azhexgate start` does by default; unset, the agent runs without it (`--no-inspect`).
 * Prints `READY {}` once its control channel is open (the listener is registered at the relay).
 */
import { startAgent } from "../../src/agent/agent.ts";
import { Inspector } from "../../src/agent/inspect/capture.ts";
import { startInspectServer } from "../../src/agent/inspect/server.ts";
import { InspectStore } from "../../src/agent/inspect/store.ts";
import { resolveNamespace } from "../../src/hc/address.ts";
import { sasTokenProvider } from "../../src/hc/tokens.ts";

const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`agent role: ${k} is not set`);
  return v;
};
const store = process.env.BENCH_INSPECT === "1" ? new InspectStore() : undefined;
const inspectServer = store ? await startInspectServer({ store, port: 0 }) : undefined;
const agent = await startAgent({
  ...(store ? { inspect: new Inspector(store) } : {}),
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

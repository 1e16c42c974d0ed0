/**
 * Agent role: `startAgent` in its own process, forwarding to the bench origin.
 *   bun bench/roles/agent.ts
 * Env: BENCH_RELAY, BENCH_KEY_NAME, BENCH_KEY, BENCH_HC, BENCH_ORIGIN (http://127.0.0.1:PORT).
 * Prints `READY {}` once its control channel is open (the listener is registered at the relay).
 */
import { startAgent } from "../../src/agent/agent.ts";
import { resolveNamespace } from "../../src/hc/address.ts";
import { sasTokenProvider } from "../../src/hc/tokens.ts";

const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`agent role: ${k} is not set`);
  return v;
};
const agent = await startAgent({
  endpoint: resolveNamespace(env("BENCH_RELAY")),
  hcPath: env("BENCH_HC"),
  token: sasTokenProvider(env("BENCH_KEY_NAME"), env("BENCH_KEY")),
  origin: env("BENCH_ORIGIN"),
  hostHeader: "rewrite",
});
console.log(`READY ${JSON.stringify({ t: performance.timeOrigin + performance.now() })}`);
const stop = async () => {
  await agent.stop().catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

/**
 * The agent in its own process for the hardening tests: `startAgent` (like bench/roles/agent.ts)
 * plus a loopback status port answering `GET /streams` with the agent's streams in flight.
 * Env: BENCH_RELAY, BENCH_KEY_NAME, BENCH_KEY, BENCH_HC, BENCH_ORIGIN. Prints `READY {"status":PORT}`.
 */
import { startAgent } from "../../../src/agent/agent.ts";
import { resolveNamespace } from "../../../src/hc/address.ts";
import { sasTokenProvider } from "../../../src/hc/tokens.ts";

const env = (k: string) => process.env[k] ?? "";
const agent = await startAgent({
  endpoint: resolveNamespace(env("BENCH_RELAY")),
  hcPath: env("BENCH_HC"),
  token: sasTokenProvider(env("BENCH_KEY_NAME"), env("BENCH_KEY")),
  origin: env("BENCH_ORIGIN"),
  hostHeader: "rewrite",
});
const status = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(String(agent.inFlight)) });
console.log(`READY ${JSON.stringify({ status: status.port })}`);
process.on("SIGTERM", async () => {
  await agent.stop().catch(() => {});
  process.exit(0);
});

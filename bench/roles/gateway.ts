/**
 * Gateway role: `startGateway` in its own process (run with --max-http-header-size=262144).
 *   bun --max-http-header-size=262144 bench/roles/gateway.ts PORT
 * Env: BENCH_RELAY (ws://127.0.0.1:PORT), BENCH_KEY_NAME, BENCH_KEY, BENCH_TUNNEL (id), BENCH_HC.
 * Public URL of the tunnel: http://127.0.0.1:PORT with `Host: {id}.localhost`.
 * BENCH_SLOWDOWN_GATEWAY_US=N busy-waits N µs of CPU per request (in `resolveTunnel`, which runs
 * once per public request): the deliberate slowdown that shows `bench:ci`'s CPU floors catch a
 * slower gateway hot path (bench/results/README.md). Bench only; src/ has no such hook.
 */
import { startGateway } from "../../src/gateway/server.ts";
import { resolveNamespace } from "../../src/hc/address.ts";
import { connectSender } from "../../src/hc/sender.ts";
import { sasTokenProvider } from "../../src/hc/tokens.ts";

const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`gateway role: ${k} is not set`);
  return v;
};
const endpoint = resolveNamespace(env("BENCH_RELAY"));
const token = sasTokenProvider(env("BENCH_KEY_NAME"), env("BENCH_KEY"));
const id = env("BENCH_TUNNEL");
const hcPath = env("BENCH_HC");
const slowUs = Number(process.env.BENCH_SLOWDOWN_GATEWAY_US ?? 0);
const spin = (us: number) => {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
};
const gateway = await startGateway({
  port: Number(process.argv[2] ?? 0),
  baseDomain: "localhost",
  resolveTunnel: slowUs > 0 ? (t) => (spin(slowUs), t === id ? { hcPath } : undefined) : (t) => (t === id ? { hcPath } : undefined),
  dial: (hc) => connectSender({ endpoint, hcPath: hc, token }),
});
console.log(`READY ${JSON.stringify({ port: gateway.port, host: `${id}.localhost` })}`);
const stop = async () => {
  await gateway.stop().catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

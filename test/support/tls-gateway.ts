/**
 * A child process for proxy tests: the relay emulator with TLS (wss://, certificate from
 * TLS_CERT_FILE / TLS_KEY_FILE) and the whole gateway app over it, on loopback. Run it with
 * NODE_EXTRA_CA_CERTS so the gateway's sender trusts that certificate. With GATEWAY_USE_PROXY=1
 * the gateway's relay WebSockets follow HTTPS_PROXY / NO_PROXY, as `azhexgate gateway` does in
 * Azure mode. Prints one JSON line: {"api_url", "relay_port", "gateway_port"}; stops on SIGTERM.
 */
import { readFileSync } from "node:fs";
import { resolveGatewayConfig } from "../../src/config.ts";
import { createLocalBinding } from "../../src/control/local.ts";
import { startEmulator } from "../../src/emulator/server.ts";
import { startGatewayApp } from "../../src/gateway/app.ts";
import { createLogger } from "../../src/log.ts";
import { proxyRouting, setProcessProxy } from "../../src/net/proxy.ts";

const cert = readFileSync(process.env.TLS_CERT_FILE!, "utf8");
const key = readFileSync(process.env.TLS_KEY_FILE!, "utf8");
if (process.env.GATEWAY_USE_PROXY === "1") setProcessProxy(proxyRouting({ env: process.env }));
const emu = await startEmulator({ hostname: "127.0.0.1", port: 0, tls: { cert, key } });
const config = resolveGatewayConfig(
  { port: "0", "base-domain": "localhost", "public-scheme": "http", registry: ":memory:" },
  { AZHEXGATE_API_KEYS: process.env.AZHEXGATE_API_KEYS },
);
const log = createLogger({ level: "warn", format: "json", sink: (l) => process.stderr.write(`${l}\n`) });
const app = await startGatewayApp({ config, env: {}, log, binding: createLocalBinding(emu) });
console.log(JSON.stringify({ api_url: app.apiUrl, relay_port: emu.port, gateway_port: app.gateway.port }));
process.on("SIGTERM", async () => {
  await app.stop();
  await emu.stop();
  process.exit(0);
});

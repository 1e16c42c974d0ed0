/**
 * `azhexgate start --port 3000` — the front door. With a gateway configured (--api-url /
 * AZHEXGATE_API_URL + key) it claims a tunnel there; with nothing configured it runs the embedded
 * default (gateway + relay emulator in this process on loopback). One supervised agent per port.
 */
import { defineCommand } from "citty";
import { allValues, strictFlags, usageExit } from "./_args.ts";

const args = {
  target: { type: "positional", required: false, description: "Port or host:port of the local app (3000, localhost:5173); same as --port, repeatable", valueHint: "port" },
  port: { type: "string", description: "Local port to expose (repeat for several: --port 3000 --port 5173)", valueHint: "n" },
  subdomain: { type: "string", description: "Reserved name to claim (owned by your API key), e.g. my-app", valueHint: "name" },
  "host-header": { type: "string", description: "Host sent to the local app: rewrite (localhost:PORT, default) or preserve (the public host)", valueHint: "mode" },
  "local-host": { type: "string", description: "Host of the local app (default localhost)", valueHint: "host" },
  "local-https": { type: "boolean", description: "The local app speaks HTTPS" },
  "api-url": { type: "string", description: "Management API of a deployed gateway [AZHEXGATE_API_URL]; omit for the embedded local gateway", valueHint: "url" },
  "api-key": { type: "string", description: "API key for --api-url [AZHEXGATE_API_KEY] (prefer the environment variable)", valueHint: "key" },
  config: { type: "string", description: "Config file (default: ./azhexgate.json or ./azhexgate.toml if present)", valueHint: "file" },
  json: { type: "boolean", description: "One JSON event per line on stdout (ready, request, state, error); without it a terminal gets a live status view" },
  "log-level": { type: "string", description: "silent, error, warn, info or debug (default warn)", valueHint: "level" },
  qr: { type: "boolean", description: "Also print the public URL as a QR code" },
  open: { type: "boolean", description: "Open the public URL in the browser once online (xdg-open / open / start; a warning if none)" },
  "exit-on-fail": { type: "boolean", description: "Also exit (code 1) on permanent relay failures instead of retrying (a rejected key, a taken name or bad configuration always exit: codes 2-4)" },
  recreate: { type: "boolean", description: "When the tunnel is deleted on the gateway, create a new one (new URL) instead of exiting (code 5)" },
  inspect: { type: "boolean", default: true, description: "Capture requests for the local inspector page (default on; --no-inspect turns capture off entirely)" },
  "inspect-port": { type: "string", description: "Port of the inspector on 127.0.0.1 (default 4040; the next free one if taken)", valueHint: "n" },
  "inspect-entries": { type: "string", description: "Requests the inspector keeps (default 500, oldest dropped first)", valueHint: "n" },
  "inspect-body-limit": { type: "string", description: "Bytes of each body the inspector captures (default 65536; the rest streams through uncaptured)", valueHint: "bytes" },
  grace: { type: "string", description: "Seconds in-flight requests may finish after Ctrl+C (default 10)", valueHint: "s" },
  proxy: { type: "string", description: "HTTP proxy for the relay and the management API, e.g. http://user:pass@proxy:3128 [HTTPS_PROXY / HTTP_PROXY, NO_PROXY]", valueHint: "url" },
  "basic-auth": { type: "string", description: "Visitors must give this USER:PASSWORD (repeatable; password 8+ characters)", valueHint: "user:pass" },
  "allow-ip": { type: "string", description: "Only clients in this CIDR may open the tunnel (repeatable)", valueHint: "cidr" },
  "deny-ip": { type: "string", description: "Clients in this CIDR are refused (repeatable; checked first)", valueHint: "cidr" },
  entra: { type: "boolean", description: "Visitors sign in with Entra ID at the gateway; the app gets X-AzHexGate-User-Email / -Oid" },
  "entra-group": { type: "string", description: "With --entra: only members of this group (object id; repeatable)", valueHint: "id" },
  "entra-tenant": { type: "string", description: "With --entra: only users of this tenant (repeatable)", valueHint: "id" },
  "rate-limit": { type: "string", description: "Requests per time for this tunnel, e.g. 100/s or 100/s,200 (burst); excess gets 429", valueHint: "rate" },
  "max-streams": { type: "string", description: "Concurrent requests / WebSockets for this tunnel; excess gets 429", valueHint: "n" },
  bandwidth: { type: "string", description: "Bytes per second per direction for this tunnel, e.g. 500k or 10m", valueHint: "rate" },
} as const;

export default defineCommand({
  meta: { name: "start", description: "Expose local ports through a tunnel and print their public URLs" },
  args,
  async run({ args: parsed, rawArgs }) {
    strictFlags("start", rawArgs, args);
    const { resolveStartConfig } = await import("../agent/start-config.ts");
    let cfg;
    try {
      cfg = await resolveStartConfig(rawArgs, allValues, process.env, process.cwd(), parsed._.map(String));
    } catch (err) {
      usageExit("start", (err as Error).message);
    }
    await runToExit(cfg);
  },
});

/** Runs `start` (or `tcp`) with a resolved configuration and exits with its code. */
export async function runToExit(cfg: import("../agent/start-config.ts").StartConfig): Promise<never> {
  if (cfg.proxy) (await import("../net/proxy.ts")).setProcessProxy(cfg.proxy);
  const { runStart } = await import("../agent/start.ts");
  // The embedded default is composed here, at the top: the agent never imports the gateway.
  const code = await runStart(cfg, async (log) => (await import("../embedded.ts")).startEmbeddedGateway(log));
  // Exit now: nothing left to wait for (a lingering socket or timer must not delay Ctrl+C).
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((r) => s.write("", () => r()))));
  process.exit(code);
}

/**
 * Runs `azhexgate start`: the embedded gateway when none is configured, one supervised agent per
 * local port, the output (human or JSON), and the graceful stop on Ctrl+C / SIGTERM (a second
 * signal stops at once). Resolves with the process exit code.
 */
import { createLogger } from "../log.ts";
import { createApiClient, type ApiClient, type ClaimedTunnel } from "./api-client.ts";
import { startEmbeddedGateway, type Embedded } from "./embedded.ts";
import { createOutput, type Output } from "./output.ts";
import type { StartConfig, TunnelSpec } from "./start-config.ts";
import { superviseAgent, type SupervisorHandle } from "./supervisor.ts";

/** True when something accepts TCP connections on host:port. */
async function listening(host: string, port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: host, port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

function runTunnel(spec: TunnelSpec, client: ApiClient, cfg: StartConfig, out: Output, log: ReturnType<typeof createLogger>) {
  const localUrl = `${spec.localHttps ? "https" : "http"}://${spec.localHost}:${spec.port}`;
  let claimed: ClaimedTunnel | undefined;
  let announced = false;
  const handle: SupervisorHandle = superviseAgent({
    origin: localUrl,
    hostHeader: spec.hostHeader,
    exitOnFail: cfg.exitOnFail,
    async connect() {
      if (claimed) {
        // Re-claim the same tunnel (e.g. after a gateway restart); a new one only if it is gone.
        try {
          claimed = await client.renew(claimed, true);
          return claimed;
        } catch (err) {
          if ((err as { code?: string }).code !== "not_found") throw err;
        }
      }
      claimed = await client.create({ subdomain: spec.subdomain, localPort: spec.port });
      return claimed;
    },
    async renew(_grant, { rejected }) {
      claimed = await client.renew(claimed!, rejected);
      return { token: claimed.token, expiresAt: claimed.expiresAt };
    },
    onRequest: (e) => claimed && out.request({ tunnel_id: claimed.id }, e),
    onState(s) {
      if (s.state === "online" && !announced) {
        announced = true;
        out.ready({ public_url: s.publicUrl, local_url: localUrl, tunnel_id: claimed?.id ?? "" });
        if (cfg.qr) void printQr(s.publicUrl, out);
        return;
      }
      if (s.state === "connecting") return;
      out.state({ tunnel_id: claimed?.id, local_url: localUrl }, s);
      if (s.state === "offline" && s.error) out.error((s.error as { code?: string }).code ?? "error", s.error.message, { local_url: localUrl });
    },
    log: (event, fields) => log.debug(event, fields),
  });
  return { handle, localUrl, claimed: () => claimed, ephemeral: !spec.subdomain };
}

async function printQr(url: string, out: Output): Promise<void> {
  try {
    const { renderUnicodeCompact } = await import("uqr");
    out.info(renderUnicodeCompact(url));
  } catch {
    out.info(`(could not render a QR code; the URL is ${url})`);
  }
}

export async function runStart(cfg: StartConfig): Promise<number> {
  const out = createOutput(cfg.json);
  const log = createLogger({ level: cfg.logLevel, format: cfg.json ? "json" : undefined }).child("agent");
  let embedded: Embedded | undefined;
  let apiUrl = cfg.apiUrl;
  let apiKey = cfg.apiKey;
  if (!apiUrl) {
    embedded = await startEmbeddedGateway(log.child("embedded"));
    apiUrl = embedded.apiUrl;
    apiKey = embedded.apiKey;
  }
  const client = createApiClient({ apiUrl, apiKey: apiKey! });
  for (const t of cfg.tunnels) {
    if (!(await listening(t.localHost === "localhost" ? "127.0.0.1" : t.localHost, t.port))) {
      out.error("origin_not_listening", `Nothing is listening on ${t.localHost}:${t.port} yet; requests will get 502 until your app starts.`, { local_port: t.port });
    }
  }
  const tunnels = cfg.tunnels.map((spec) => runTunnel(spec, client, cfg, out, log));

  let signals = 0;
  const stopAll = async (immediate: boolean) => {
    await Promise.all(tunnels.map((t) => t.handle.stop(immediate ? { graceMs: 0 } : { graceMs: cfg.graceMs })));
  };
  const done = new Promise<number>((resolve) => {
    const onSignal = () => {
      signals++;
      if (signals > 1) {
        void stopAll(true);
        return;
      }
      void (async () => {
        await stopAll(false);
        for (const t of tunnels) {
          const c = t.claimed();
          if (t.ephemeral && c && !embedded) await client.remove(c.id).catch(() => {});
        }
        await embedded?.app.stop();
        resolve(0);
      })();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    // A permanent failure of every tunnel (only with --exit-on-fail) ends the process with 1.
    void Promise.all(tunnels.map((t) => t.handle.closed)).then(async (errs) => {
      if (signals === 0 && errs.some((e) => e)) {
        await embedded?.app.stop();
        resolve(1);
      }
    });
  });
  return done;
}

/**
 * Runs `azhexgate start`: the embedded gateway when none is configured, one supervised agent per
 * local port, the output (human or JSON), and the graceful stop on Ctrl+C / SIGTERM (a second
 * signal stops at once). Resolves with the process exit code.
 */
import { createLogger } from "../log.ts";
import { ApiClientError, createApiClient, type ApiClient, type ClaimedTunnel } from "./api-client.ts";
import { EXIT, terminalExitCode } from "./exit-codes.ts";
import { originPool } from "./forward.ts";
import type { Inspector } from "./inspect/capture.ts";
import { createOutput, outputFor, type Output } from "./output.ts";
import type { StartConfig, TunnelSpec } from "./start-config.ts";
import { superviseAgent, type SupervisorHandle } from "./supervisor.ts";

/**
 * A gateway running in this process on loopback (the embedded default, composed at the top:
 * src/embedded.ts). The agent talks to it over the management API and the relay like any other.
 */
export interface LocalGateway {
  apiUrl: string;
  apiKey: string;
  /** A loopback port serving tunnel `id` whatever the Host (for clients without *.localhost). */
  serveTunnelOnLoopback(id: string): { url: string; stop(): void };
  /** Waits up to `ms` for replies still being written to clients. */
  drain(ms: number): Promise<unknown>;
  stop(): Promise<void>;
}

/** True when something accepts TCP connections on host:port. */
async function accepts(host: string, port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: host, port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

/**
 * True when the local app accepts connections. `localhost` is tried on 127.0.0.1 and ::1 (an app
 * such as Vite may listen on only one of them; forwarding resolves localhost either way).
 */
async function listening(host: string, port: number): Promise<boolean> {
  const addrs = host === "localhost" ? ["127.0.0.1", "::1"] : [host.replace(/^\[|\]$/g, "")];
  const results = await Promise.all(addrs.map((a) => accepts(a, port)));
  return results.some(Boolean);
}

/** A tunnel that ended for good: the error and the exit code it ends the process with. */
interface Fatal {
  err: Error;
  exitCode: number;
}

/** The inspector (on by default): capture hook + its page on 127.0.0.1; undefined with --no-inspect or when it cannot listen. */
async function startInspector(cfg: StartConfig, out: Output) {
  if (!cfg.inspect) return undefined;
  const [{ Inspector }, { InspectStore }, { startInspectServer }] = await Promise.all([import("./inspect/capture.ts"), import("./inspect/store.ts"), import("./inspect/server.ts")]);
  const store = new InspectStore({ entries: cfg.inspect.entries, bodyLimit: cfg.inspect.bodyLimit, wsMessages: 50 });
  try {
    const server = await startInspectServer({ store, port: cfg.inspect.port });
    return { inspector: new Inspector(store), server };
  } catch (err) {
    out.warn("inspector_unavailable", `${(err as Error).message}; requests are not captured (pick another --inspect-port).`);
    return undefined;
  }
}

function runTunnel(spec: TunnelSpec, client: ApiClient, cfg: StartConfig, out: Output, log: ReturnType<typeof createLogger>, onFatal: () => void, embedded?: LocalGateway, insp?: { inspector: Inspector; url: string }) {
  const localUrl = `${cfg.tcp ? "tcp" : spec.localHttps ? "https" : "http"}://${spec.localHost}:${spec.port}`;
  let claimed: ClaimedTunnel | undefined;
  /** Embedded only: the loopback port serving this tunnel whatever the Host (for clients without *.localhost). */
  let loopback: { id: string; url: string; stop(): void } | undefined;
  const loopbackUrl = (): string | undefined => {
    if (!embedded || !claimed) return undefined;
    if (loopback?.id !== claimed.id) {
      loopback?.stop();
      try {
        loopback = { id: claimed.id, ...embedded.serveTunnelOnLoopback(claimed.id) };
      } catch (err) {
        loopback = undefined;
        out.warn("loopback_port_failed", `No loopback port for tunnel ${claimed.id}: ${(err as Error).message}`, { tunnel_id: claimed.id });
      }
    }
    return loopback?.url;
  };
  let announced = false;
  /** --open: once per tunnel, not again after a reconnect or --recreate. */
  let opened = false;
  let fatal: Fatal | undefined;
  /** Streams still in flight when the grace period ended (cut off). */
  let cut = 0;
  /** A terminal management-API error: say it once, stop this tunnel, let runStart exit with its code. */
  const endWith = (err: unknown): void => {
    const exitCode = terminalExitCode(err);
    if (exitCode === undefined || fatal) return;
    fatal = { err: err as Error, exitCode };
    out.error((err as { code?: string }).code ?? "error", (err as Error).message, { local_url: localUrl, exit_code: exitCode });
    out.state({ tunnel_id: claimed?.id, local_url: localUrl }, { state: "offline", reason: (err as Error).message, error: err as Error });
    void handle.stop({ graceMs: 0 }).then(onFatal);
  };
  const handle: SupervisorHandle = superviseAgent({
    origin: localUrl,
    hostHeader: spec.hostHeader,
    exitOnFail: cfg.exitOnFail,
    ...(cfg.tcp ? { tcpTarget: { host: spec.localHost, port: spec.port } } : {}),
    ...(insp ? { inspect: insp.inspector } : {}),
    async connect() {
      try {
        if (claimed) {
          // Re-claim the same tunnel (e.g. after a gateway restart) …
          try {
            claimed = await client.renew(claimed, true);
            return claimed;
          } catch (err) {
            if ((err as { code?: string }).code !== "not_found") throw err;
            // … gone: deleted on the gateway (or expired). A new tunnel only when asked for.
            if (!cfg.recreate) {
              throw new ApiClientError(
                "tunnel_deleted",
                `Tunnel ${claimed.id} was deleted on the gateway (azhexgate tunnels delete, or it expired); stopping. ` +
                  `Run azhexgate start again for a new tunnel, or pass --recreate to get one automatically.`,
                false,
                404,
              );
            }
            out.info(`${localUrl}: tunnel ${claimed.id} was deleted on the gateway; creating a new one (--recreate)`);
            announced = false; // the new public URL gets its own banner / ready event
          }
        }
        claimed = await client.create({ subdomain: spec.subdomain, localPort: spec.port, access: cfg.access, ...(cfg.tcp ? { tcp: cfg.tcp } : {}) });
        return claimed;
      } catch (err) {
        endWith(err);
        throw err;
      }
    },
    async renew(_grant, { rejected }) {
      try {
        claimed = await client.renew(claimed!, rejected);
      } catch (err) {
        if ((err as { code?: string }).code !== "not_found") endWith(err);
        throw err;
      }
      return { token: claimed.token, expiresAt: claimed.expiresAt };
    },
    onRequest: (e) => claimed && out.request({ tunnel_id: claimed.id }, e),
    onState(s) {
      if (fatal) return; // said once by endWith
      if (s.state === "online" && !announced) {
        announced = true;
        const loopback_url = loopbackUrl();
        out.ready({ public_url: s.publicUrl, local_url: localUrl, tunnel_id: claimed?.id ?? "", ...(cfg.tcp ? { name: claimed?.id ?? "" } : {}), ...(loopback_url ? { loopback_url } : {}), ...(insp ? { inspect_url: insp.url } : {}) });
        if (cfg.qr) void printQr(s.publicUrl, out);
        if (cfg.open && !opened) {
          opened = true;
          void import("./open-url.ts").then((m) => m.openUrl(s.publicUrl, out));
        }
        return;
      }
      if (s.state === "connecting") return;
      out.state({ tunnel_id: claimed?.id, local_url: localUrl }, s);
      if (s.state === "offline" && s.error) out.error((s.error as { code?: string }).code ?? "error", s.error.message, { local_url: localUrl });
    },
    log: (event, fields) => {
      if (event === "stopped" && typeof fields?.cutStreams === "number") cut = fields.cutStreams;
      log.debug(event, fields);
    },
  });
  return { handle, localUrl, claimed: () => claimed, ephemeral: !spec.subdomain, fatal: () => fatal, cut: () => cut };
}

async function printQr(url: string, out: Output): Promise<void> {
  try {
    const { renderUnicodeCompact } = await import("uqr");
    out.info(renderUnicodeCompact(url));
  } catch {
    out.info(`(could not render a QR code; the URL is ${url})`);
  }
}

/**
 * Runs the steps of a stop in order; a step that throws or rejects is reported and the next one
 * still runs, so the exit code is always reached (issue 18: a rejection in the stop path left the
 * process running).
 */
export async function runSteps(steps: Array<() => unknown>, failed: (err: unknown) => void): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      failed(err);
    }
  }
}

/** `startLocalGateway`: how to run the embedded default when no gateway is configured. */
export async function runStart(cfg: StartConfig, startLocalGateway?: (log: ReturnType<typeof createLogger>) => Promise<LocalGateway>): Promise<number> {
  const out = cfg.tcp ? createOutput(cfg.json) : await outputFor(cfg.json);
  const log = createLogger({ level: cfg.logLevel, format: cfg.json ? "json" : undefined }).child("agent");
  let embedded: LocalGateway | undefined;
  let apiUrl = cfg.apiUrl;
  let apiKey = cfg.apiKey;
  if (!apiUrl) {
    if (!startLocalGateway) throw new Error("no gateway configured and no embedded gateway to start");
    embedded = await startLocalGateway(log.child("embedded"));
    apiUrl = embedded.apiUrl;
    apiKey = embedded.apiKey;
  }
  const client = createApiClient({ apiUrl, apiKey, bearer: cfg.bearer });
  for (const t of cfg.tunnels) {
    if (!(await listening(t.localHost, t.port))) {
      out.warn("origin_not_listening", `Nothing is listening on ${t.localHost}:${t.port} yet; ${cfg.tcp ? "connections will be refused until the service starts" : "requests will get 502 until your app starts"}.`, { local_port: t.port });
    }
  }
  const insp = await startInspector(cfg, out);
  let endAllFatal: () => void = () => {};
  const tunnels = cfg.tunnels.map((spec) => runTunnel(spec, client, cfg, out, log, () => endAllFatal(), embedded, insp && { inspector: insp.inspector, url: insp.server.url }));
  for (const t of tunnels) out.track?.(t.localUrl, () => t.handle.inFlight);

  let signals = 0;
  const stepFailed = (err: unknown) => log.warn("stop_step_failed", { error: (err as Error)?.message ?? String(err) });
  const stopAll = async (immediate: boolean) => {
    const t0 = Date.now();
    await Promise.all(tunnels.map((t) => t.handle.stop(immediate ? { graceMs: 0 } : { graceMs: cfg.graceMs })));
    // Embedded: the agent's streams ended, but the gateway may still be writing their replies'
    // tails to the clients; let it finish them within what is left of the grace.
    if (embedded && !immediate) await embedded.drain(Math.max(0, cfg.graceMs - (Date.now() - t0)));
  };
  const done = new Promise<number>((resolve) => {
    const onSignal = () => {
      signals++;
      if (signals > 1) {
        void stopAll(true);
        return;
      }
      void runSteps(
        [
          () => stopAll(false),
          () => {
            const cut = tunnels.reduce((n, t) => n + t.cut(), 0);
            if (cut > 0 && signals === 1) out.info(`stopped: ${cut} request(s) still in flight after the ${cfg.graceMs / 1000} s grace were cut off`);
          },
          // ephemeral tunnels are deleted on the gateway, all at once and briefly: exiting must not wait on the network
          () =>
            Promise.race([
              Promise.all(tunnels.map((t) => {
                const c = t.claimed();
                return t.ephemeral && c && !embedded && !t.fatal() ? client.remove(c.id).catch(() => {}) : undefined;
              })),
              Bun.sleep(2000),
            ]),
          () => originPool.close(), // idle keep-alive sockets to the app would hold the process open for up to 4 s
          () => insp?.server.stop(),
          () => embedded?.stop(),
        ],
        stepFailed,
      ).then(() => resolve(EXIT.ok));
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    // Every tunnel ended on a terminal error: exit with the first one's code.
    endAllFatal = () => {
      if (signals > 0 || !tunnels.every((t) => t.fatal())) return;
      void runSteps([() => insp?.server.stop(), () => embedded?.stop()], stepFailed).then(() => resolve(tunnels[0]!.fatal()!.exitCode));
    };
    // A permanent failure of every tunnel (only with --exit-on-fail) ends the process with 1.
    void Promise.all(tunnels.map((t) => t.handle.closed)).then(async (errs) => {
      if (signals === 0 && errs.some((e) => e) && !tunnels.some((t) => t.fatal())) {
        await runSteps([() => insp?.server.stop(), () => embedded?.stop()], stepFailed);
        resolve(EXIT.failed);
      }
    });
  });
  const code = await done;
  out.close?.();
  return code;
}

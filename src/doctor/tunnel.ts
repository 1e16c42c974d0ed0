/**
 * Check 5: one real tunnel, end to end, with the agent's own pieces. `create` claims an ephemeral
 * tunnel over the management API; `listen` opens an HC listener with the issued token (the same
 * listener + TunnelSessions the agent runs) towards a tiny app doctor serves on 127.0.0.1 that
 * answers a random nonce; `roundTrip` fetches `{scheme}://{id}.{domain}/…` through the gateway
 * and checks the nonce came back; `remove` deletes the tunnel. `close()` always tidies up.
 *
 * The role names in the fixes are Azure Relay's built-in roles (Azure Relay Owner / Listener /
 * Sender), and a new role assignment can take up to five minutes to take effect:
 * https://learn.microsoft.com/en-us/azure/azure-relay/authenticate-application
 */
import { randomBytes } from "node:crypto";
import { serveAccepts } from "../agent/agent.ts";
import { TunnelSessions } from "../agent/sessions.ts";
import { resolveNamespace } from "../hc/address.ts";
import type { RelayError } from "../hc/errors.ts";
import { HybridConnectionListener } from "../hc/listener.ts";
import { apiError, apiFailure } from "./api-key.ts";
import { describeError, fetchWith, readText, withTimeout, type NetOptions } from "./net.ts";
import { type Target, tunnelOrigin } from "./target.ts";
import { fail, pass, warn, type Outcome } from "./types.ts";

interface Claimed {
  id: string;
  publicUrl: string;
  relayEndpoint: string;
  hcPath: string;
  token: string;
}

/** How many times a round trip is tried when the gateway says the tunnel is not connected yet. */
const ROUND_TRIP_ATTEMPTS = 3;

function relayFailure(err: RelayError | Error, where: string, t: Target, timeoutMs: number): Outcome {
  const code = (err as RelayError).code;
  const msg = err.message;
  const u = new URL(where.replace(/^ws/, "http"));
  const host = u.hostname;
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  switch (code) {
    case "network":
      return fail("tunnel.listen", `the listener could not connect to the relay at ${where}: ${describeError(err, timeoutMs)}`, `Agents need outbound ${where.split(":")[0]} (TCP ${port}) to ${host}: check firewalls and proxies on this machine; operators: check the gateway's AZHEXGATE_RELAY_NAMESPACE.`);
    case "timeout":
      return fail("tunnel.listen", `the relay at ${where} did not accept the listener in time (${msg})`, `Check that ${host} is reachable from here (outbound TCP ${port}) and retry.`);
    case "unauthorized":
      return fail("tunnel.listen", `the relay at ${where} refused the listener token the gateway issued (${msg})`, "The gateway signs listener tokens with a key the relay does not accept: operators, check AZHEXGATE_RELAY_KEY_NAME / AZHEXGATE_RELAY_KEY (a rule with Listen on the namespace) and the gateway's clock.");
    case "forbidden":
      return fail("tunnel.listen", `the relay at ${where} says the issued token lacks the Listen right (${msg})`, "Operators: the rule that signs listener tokens must grant Listen on the hybrid connections (hc-*).");
    case "not_found":
      return fail("tunnel.listen", `the relay at ${where} does not have the tunnel's hybrid connection (${msg})`, "The gateway could not create it: operators, check its relay role assignment (Azure Relay Owner on the namespace; a new role assignment can take up to five minutes) and its log.");
    case "listener_limit":
      return fail("tunnel.listen", `the relay refused the listener: limit reached (${msg})`, "Too many listeners on this hybrid connection; retry later.");
    default:
      return fail("tunnel.listen", `the listener could not connect to the relay at ${where}: ${msg}`, `Check that ${t.base}'s relay namespace is reachable from here, and the gateway's log.`);
  }
}

export class TunnelProbe {
  private claimed?: Claimed;
  private listener?: HybridConnectionListener;
  private sessions?: TunnelSessions;
  private readonly nonce = randomBytes(16).toString("hex");
  private hits = 0;
  private readonly origin = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    development: false,
    fetch: () => {
      this.hits++;
      return new Response(this.nonce, { headers: { "content-type": "text/plain", "cache-control": "no-store" } });
    },
  });

  constructor(
    private readonly t: Target,
    private readonly apiKey: string,
    private readonly net: NetOptions,
  ) {}

  /** True once a tunnel exists on the gateway (so it must be deleted). */
  get created(): boolean {
    return this.claimed !== undefined;
  }

  /** Secrets doctor must never print (the listener token once issued, also after the delete). */
  readonly secrets: string[] = [];

  async create(): Promise<Outcome> {
    const what = "POST /api/tunnels";
    let res: Response;
    try {
      res = await fetchWith(`${this.t.base}/api/tunnels`, this.net, {
        method: "POST",
        headers: { "x-azhexgate-apikey": this.apiKey, "content-type": "application/json", accept: "application/json" },
        body: "{}",
      });
    } catch (err) {
      return fail("tunnel.create", `${what} failed: ${describeError(err, this.net.timeoutMs)}`, `Check that ${this.t.base} is reachable from here and retry.`);
    }
    const text = await readText(res, 1 << 20);
    if (!res.ok) {
      const e = apiError(text);
      if (e.code === "relay_unavailable") {
        return fail("tunnel.create", `${what} → ${res.status} relay_unavailable: ${e.message ?? ""}`.trim(), "The gateway cannot create hybrid connections: operators, check its relay role assignment (Azure Relay Owner on the namespace; a new role assignment can take up to five minutes) and its log.");
      }
      return apiFailure("tunnel.create", what, res, text);
    }
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(text) as Record<string, unknown>;
    } catch {
      v = {};
    }
    const str = (k: string) => (typeof v[k] === "string" ? (v[k] as string) : "");
    const claimed: Claimed = { id: str("id"), publicUrl: str("public_url"), relayEndpoint: str("relay_endpoint"), hcPath: str("hybrid_connection_name"), token: str("listener_token") };
    if (!claimed.id || !claimed.relayEndpoint || !claimed.hcPath || !claimed.token) {
      return fail("tunnel.create", `${what} → ${res.status} without a tunnel id, relay endpoint and listener token`, "Is --api-url an azhexgate gateway of this version?");
    }
    this.claimed = claimed;
    this.secrets.push(claimed.token);
    const detail = `created tunnel ${claimed.id} (${claimed.publicUrl || "no public URL"}), relay ${claimed.relayEndpoint}`;
    let advertised: URL | undefined;
    try {
      advertised = new URL(claimed.publicUrl);
    } catch {
      /* judged below */
    }
    if (this.t.domain && advertised?.hostname !== `${claimed.id}.${this.t.domain}`) {
      return fail("tunnel.create", `${detail}: the gateway advertises a host outside ${this.t.domain}`, `Operators: set AZHEXGATE_BASE_DOMAIN=${this.t.domain} on the gateway (or use the --api-url of its own base domain).`);
    }
    if (advertised && advertised.protocol !== `${this.t.scheme}:`) {
      return warn("tunnel.create", `${detail}: the gateway advertises ${advertised.protocol}// URLs but is reached over ${this.t.scheme}`, `Operators: set AZHEXGATE_PUBLIC_SCHEME=${this.t.scheme} on the gateway so users get working URLs.`);
    }
    return pass("tunnel.create", detail);
  }

  async listen(): Promise<Outcome> {
    const c = this.claimed!;
    let endpoint;
    try {
      endpoint = resolveNamespace(c.relayEndpoint);
    } catch (err) {
      return fail("tunnel.listen", `the relay endpoint ${c.relayEndpoint} the gateway handed out is not usable: ${(err as Error).message}`, "Operators: check AZHEXGATE_RELAY_NAMESPACE.");
    }
    const where = `${endpoint.scheme}://${endpoint.host}`;
    const listener = new HybridConnectionListener({ endpoint, hcPath: c.hcPath, token: c.token, autoRenew: false, timeoutMs: this.net.timeoutMs });
    const sessions = new TunnelSessions({ origin: `http://127.0.0.1:${this.origin.port}`, hostHeader: "rewrite" });
    serveAccepts(listener, sessions);
    listener.on("error", () => {});
    try {
      await listener.open();
    } catch (err) {
      return relayFailure(err as RelayError, where, this.t, this.net.timeoutMs);
    }
    this.listener = listener;
    this.sessions = sessions;
    return pass("tunnel.listen", `a listener for ${c.hcPath} is connected to the relay at ${where}`);
  }

  async roundTrip(): Promise<Outcome> {
    const c = this.claimed!;
    const origin = tunnelOrigin(this.t, c.id) ?? c.publicUrl.replace(/\/+$/, "");
    const url = `${origin}/.well-known/azhexgate-doctor?n=${randomBytes(4).toString("hex")}`;
    const host = new URL(origin).host;
    let last: Outcome | undefined;
    for (let attempt = 1; attempt <= ROUND_TRIP_ATTEMPTS; attempt++) {
      const started = Date.now();
      let res: Response;
      try {
        res = await fetchWith(url, this.net, { headers: { accept: "text/plain" } });
      } catch (err) {
        return fail("tunnel.roundtrip", `GET ${origin}/… failed: ${describeError(err, this.net.timeoutMs)}`, `Check that ${host} reaches the gateway (the *.${this.t.domain ?? "domain"} DNS record and hostname binding).`);
      }
      const body = await readText(res, 64 * 1024);
      const gwError = res.headers.get("x-azhexgate-error");
      if (res.status === 200 && body === this.nonce) {
        return pass("tunnel.roundtrip", `GET ${origin}/… came back through the gateway, the relay and the listener with the expected answer (${Date.now() - started} ms)`);
      }
      if (res.status === 200) {
        return fail("tunnel.roundtrip", `GET ${origin}/… → 200 but not from doctor's local app${this.hits ? "" : " (it saw no request)"}`, `Something other than the gateway answers ${host}: check the *.${this.t.domain ?? "domain"} DNS record and that the front end routes it to the gateway.`);
      }
      last = this.roundTripFailure(origin, host, res.status, gwError, body);
      if (!(res.status === 502 && gwError === "tunnel_offline") || attempt === ROUND_TRIP_ATTEMPTS) break;
      await Bun.sleep(300 * attempt);
    }
    return last!;
  }

  private roundTripFailure(origin: string, host: string, status: number, gwError: string | null, body: string): Outcome {
    const e = apiError(body);
    const said = `GET ${origin}/… → ${status}${gwError ? ` ${gwError}` : ""}${e.message ? `: ${e.message}` : ""}`;
    switch (gwError) {
      case null:
        return fail("tunnel.roundtrip", `${said} (not an azhexgate answer)`, `The request for ${host} did not reach the gateway: bind *.${this.t.domain ?? "your domain"} as a custom domain of the gateway's front end (with its certificate), and check the wildcard DNS record.`);
      case "tunnel_not_found":
        return fail("tunnel.roundtrip", said, "The gateway that answered does not know the tunnel just created: with several replicas they must share one registry (Redis); or *.domain points at another gateway.");
      case "tunnel_offline":
        return fail("tunnel.roundtrip", said, "The gateway could not reach the listener through the relay. Operators: check the gateway's sender credential (its managed identity needs Azure Relay Sender or Owner on the namespace; a new role assignment can take up to five minutes) and its log. Here: the listener must be able to open its rendezvous connection (outbound wss) to the relay.");
      case "origin_unreachable":
      case "origin_timeout":
        return fail("tunnel.roundtrip", `${said} (doctor's own local app on 127.0.0.1:${this.origin.port})`, "The listener reached this machine but could not reach doctor's local app; is something on this machine blocking loopback connections?");
      default:
        return fail("tunnel.roundtrip", said, "See the gateway's log for this request.");
    }
  }

  async remove(): Promise<Outcome> {
    const c = this.claimed!;
    await this.stopListener();
    const what = `DELETE /api/tunnels/${c.id}`;
    let res: Response;
    try {
      res = await fetchWith(`${this.t.base}/api/tunnels/${encodeURIComponent(c.id)}`, this.net, { method: "DELETE", headers: { "x-azhexgate-apikey": this.apiKey } });
    } catch (err) {
      return fail("tunnel.delete", `${what} failed: ${describeError(err, this.net.timeoutMs)}`, `Delete it later with: azhexgate tunnels delete ${c.id}`);
    }
    const text = await readText(res);
    if (res.status === 204 || res.ok) {
      this.claimed = undefined;
      return pass("tunnel.delete", `deleted tunnel ${c.id}`);
    }
    const f = apiFailure("tunnel.delete", what, res, text);
    return { ...f, fix: `${f.fix} Then delete it with: azhexgate tunnels delete ${c.id}` };
  }

  private async stopListener(): Promise<void> {
    const { listener, sessions } = this;
    this.listener = undefined;
    this.sessions = undefined;
    sessions?.cut();
    if (listener) await withTimeout(listener.close(), this.net.timeoutMs, "closing the listener").catch(() => {});
    sessions?.closeAll(1001, "doctor done");
  }

  /** Stops the listener and the local app (the tunnel itself is removed by `remove()`). */
  async close(): Promise<void> {
    await this.stopListener();
    this.origin.stop(true);
  }
}

/**
 * Quota answers and role propagation, through the real clients against the emulator:
 * - the 26th listener gets 403 with a quota description (Service Bus convention, the emulator's
 *   default) or 429 (selectable): both are a retryable `listener_limit`, never "forbidden";
 * - a supervised agent (gateway, emulator, agent, local app) whose hybrid connection is full keeps
 *   retrying with backoff even with exitOnFail, and comes online once a listener leaves;
 * - roles propagating: for the first seconds every token is refused (401 or 403); the gateway's
 *   sender keeps retrying inside the propagation window and the request succeeds; after the window
 *   a 401 is reported at once; the agent's policy does not call a 401 permanent while roles propagate.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { classify } from "../src/agent/policy.ts";
import { superviseAgent, type SupervisorHandle } from "../src/agent/supervisor.ts";
import type { RelayBinding } from "../src/control/types.ts";
import { startEmulator, type EmulatorHandle } from "../src/emulator/server.ts";
import { senderDialer } from "../src/gateway/credential.ts";
import { startGateway } from "../src/gateway/server.ts";
import { handshakeError, isQuotaDescription, RelayError } from "../src/hc/errors.ts";
import { HybridConnectionListener } from "../src/hc/listener.ts";
import { sasTokenProvider } from "../src/hc/tokens.ts";
import { signTestJwt } from "../src/emulator/entra.ts";
import { startAgentRelay, type AgentRelay } from "./support/agent-relay.ts";
import { API_KEY, killAll, spawnCli, startGatewayChild, startOrigin } from "./support/cli-proc.ts";
import { StateLog } from "./support/states.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  await killAll();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ROOT = "RootManageSharedAccessKey";

async function emulator(o: Parameters<typeof startEmulator>[0] = {}): Promise<EmulatorHandle> {
  const e = await startEmulator(o);
  cleanups.push(() => e.stop());
  return e;
}

function rootTokens(e: EmulatorHandle) {
  return sasTokenProvider(ROOT, e.entities.namespaceRules.get(ROOT)!.primaryKey);
}

function listener(e: EmulatorHandle, hcPath: string): HybridConnectionListener {
  const l = new HybridConnectionListener({ endpoint: e.endpoint, hcPath, token: rootTokens(e), autoRenew: false });
  l.on("error", () => {});
  cleanups.push(() => l.close());
  return l;
}

async function openError(l: HybridConnectionListener): Promise<RelayError> {
  const err = await l.open().then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!(err instanceof RelayError)) throw new Error(`expected a RelayError, got ${String(err)}`);
  return err;
}

describe("quota answers", () => {
  test("the 26th listener: 403 with a quota description by default → listener_limit, retryable, clear message", async () => {
    const e = await emulator({ hybridConnections: [{ path: "full" }] });
    const ls = Array.from({ length: 25 }, () => listener(e, "full"));
    await Promise.all(ls.map((l) => l.open()));
    expect(e.listenerCount("full")).toBe(25);
    const err = await openError(listener(e, "full"));
    expect([err.code, err.status, err.retryable]).toEqual(["listener_limit", 403, true]);
    expect(err.message).toMatch(/^relay quota reached: too many listeners on this hybrid connection \(403: QuotaExceeded: The maximum number of listeners \(25\)/);
    expect(err.message).toContain("retrying with backoff");
    expect(e.listenerCount("full")).toBe(25);
  });

  test("429 is still selectable (fault switch and admin action) and maps the same way; reset restores 403", async () => {
    const e = await emulator({ hybridConnections: [{ path: "one" }], maxListeners: 1 });
    await listener(e, "one").open();
    e.faults.listenerQuotaStatus(429);
    const err = await openError(listener(e, "one"));
    expect([err.code, err.status, err.retryable]).toEqual(["listener_limit", 429, true]);
    e.faults.reset();
    expect((await openError(listener(e, "one"))).status).toBe(403);
    const res = await fetch(`${e.httpUrl}/$emulator/faults`, { method: "POST", body: JSON.stringify({ action: "listenerQuotaStatus", status: 429 }) });
    expect(res.status).toBe(200);
    expect((await openError(listener(e, "one"))).status).toBe(429);
    const bad = await fetch(`${e.httpUrl}/$emulator/faults`, { method: "POST", body: JSON.stringify({ action: "listenerQuotaStatus", status: 500 }) });
    expect(bad.status).toBe(400);
  });

  test("only a 403 that names a quota is a limit; a missing right stays forbidden (not retryable)", () => {
    for (const d of [
      "QuotaExceeded: The maximum number of listeners (25) for this hybrid connection has been reached.",
      "The quota for MaximumListenersPerEndpoint was exceeded",
      "Number of listeners per endpoint limit has been reached",
    ]) {
      expect(isQuotaDescription(d)).toBe(true);
      expect(handshakeError("listener", 403, d).code).toBe("listener_limit");
    }
    const forbidden = handshakeError("listener", 403, "Unauthorized access. 'Listen' claim(s) are required to perform this operation.");
    expect([forbidden.code, forbidden.retryable]).toEqual(["forbidden", false]);
    // the agent's policy: a limit is retried as is, never permanent
    expect(classify(handshakeError("listener", 403, "QuotaExceeded"), "renew")).toEqual({ fix: "none", permanent: false, code: "listener_limit" });
  });

  test("a supervised agent on a full hybrid connection retries with backoff (even with exitOnFail) and serves once a slot frees", async () => {
    const fx: AgentRelay = await startAgentRelay({ fetch: (req) => new Response(`hello ${new URL(req.url).pathname}`) });
    cleanups.push(() => fx.stop());
    fx.relay.entities.upsert({ path: fx.hcPath });
    const squatters = Array.from({ length: 25 }, () => listener(fx.relay, fx.hcPath));
    await Promise.all(squatters.map((l) => l.open()));
    const log = new StateLog();
    const sup: SupervisorHandle = superviseAgent({
      connect: fx.connect,
      renew: fx.renew,
      origin: `http://127.0.0.1:${fx.origin.port}`,
      hostHeader: "rewrite",
      exitOnFail: true,
      backoff: { baseMs: 200, capMs: 400 },
      onState: log.push,
    });
    cleanups.push(() => sup.stop({ graceMs: 0 }));
    const first = await log.next("reconnecting");
    expect(first.code).toBe("listener_limit");
    expect(first.reason).toContain("relay quota reached");
    await log.next("reconnecting", (s) => s.attempt >= 2 && s.code === "listener_limit");
    expect(log.of("offline")).toEqual([]); // not permanent
    await squatters[0]!.close();
    await log.next("online", () => true, 15_000);
    // the relay picks a random listener per sender: the squatters (which accept nothing) leave
    await Promise.all(squatters.slice(1).map((l) => l.close()));
    const res = await fetch(`${fx.url}/after`);
    expect([res.status, await res.text()]).toEqual([200, "hello /after"]);
  });
});

describe("roles propagating (401 / 403 for the first seconds)", () => {
  /** An Azure-mode binding over the emulator (SAS sender, as with an env key): the propagation window is on. */
  function azureLikeBinding(e: EmulatorHandle): RelayBinding {
    return {
      mode: "azure",
      endpoint: e.endpoint,
      senderToken: rootTokens(e),
      provisioner: { ensure: async () => {}, remove: async () => {} },
      issuer: { issue: async () => ({ token: "", expiresAt: 0 }) },
      close: async () => {},
    } as unknown as RelayBinding;
  }

  test("the gateway's sender retries inside the window and the first request succeeds once roles apply", async () => {
    const e = await emulator({ hybridConnections: [{ path: "hc" }] });
    const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`ok ${new URL(req.url).pathname}`) });
    cleanups.push(() => origin.stop(true));
    // the agent's listener is up before the fault, so only the gateway's sender meets it
    const log = new StateLog();
    const sup = superviseAgent({
      connect: async () => ({ endpoint: e.endpoint, hcPath: "hc", token: await rootTokens(e).getToken(`http://${e.endpoint.host}/hc`), expiresAt: Date.now() + 3_600_000, publicUrl: "", sessionId: "s" }),
      renew: async () => ({ token: await rootTokens(e).getToken(`http://${e.endpoint.host}/hc`), expiresAt: Date.now() + 3_600_000 }),
      origin: `http://127.0.0.1:${origin.port}`,
      hostHeader: "rewrite",
      onState: log.push,
    });
    cleanups.push(() => sup.stop({ graceMs: 0 }));
    await log.next("online");
    e.faults.rolePropagation({ seconds: 2, status: 403, tokens: "sas" });
    const retries: number[] = [];
    const gw = await startGateway({
      baseDomain: "localhost",
      resolveTunnel: (t) => (t === "t1" ? { hcPath: "hc" } : undefined),
      dial: senderDialer(azureLikeBinding(e), { onPropagating: (_hc, err, attempt) => retries.push(err.status ?? 0, attempt) }),
    });
    cleanups.push(() => gw.stop());
    const res = await fetch(`${gw.tunnelUrl("t1")}/first`);
    expect([res.status, await res.text()]).toEqual([200, "ok /first"]);
    expect(retries.length).toBeGreaterThanOrEqual(2); // at least one 403 was retried, not reported
    expect(retries[0]).toBe(403);
    expect(e.faults.rolePropagationRefusals()).toBeGreaterThanOrEqual(1);
  });

  test("a dial's retry budget ends with a message that says roles may be propagating; after the window 401 is reported at once", async () => {
    const e = await emulator({ hybridConnections: [{ path: "hc" }] });
    e.faults.rolePropagation({ seconds: 60, status: 401 });
    let skew = 0;
    const dial = senderDialer(azureLikeBinding(e), { propagationDialBudgetMs: 600, now: () => Date.now() + skew });
    const err = (await dial("hc").catch((x: unknown) => x)) as RelayError;
    expect([err.code, err.status, err.retryable]).toEqual(["unauthorized", 401, true]);
    expect(err.message).toContain("role assignments can take up to 5 minutes to apply");
    // six minutes later (same dialer, clock moved): the window is over, the 401 is the answer
    skew += 6 * 60_000;
    const before = e.faults.rolePropagationRefusals();
    const late = (await dial("hc").catch((x: unknown) => x)) as RelayError;
    expect([late.code, late.status, late.retryable]).toEqual(["unauthorized", 401, false]);
    expect(e.faults.rolePropagationRefusals() - before).toBe(2); // the dial + the one forced-refresh retry
    // the local emulator binding has no window: 401 at once
    const local = senderDialer({ ...azureLikeBinding(e), mode: "local" } as RelayBinding);
    expect(((await local("hc").catch((x: unknown) => x)) as RelayError).retryable).toBe(false);
  });

  test("listeners meet it too (Entra or SAS): the agent reconnects until roles apply; its policy keeps 401 non-permanent meanwhile", async () => {
    const e = await emulator({ hybridConnections: [{ path: "hc" }] });
    e.faults.rolePropagation({ seconds: 1.5, status: 401, tokens: "all" });
    const log = new StateLog();
    const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
    cleanups.push(() => origin.stop(true));
    const token = () => rootTokens(e).getToken(`http://${e.endpoint.host}/hc`);
    const sup = superviseAgent({
      connect: async () => ({ endpoint: e.endpoint, hcPath: "hc", token: await token(), expiresAt: Date.now() + 3_600_000, publicUrl: "", sessionId: "s" }),
      renew: async () => ({ token: await token(), expiresAt: Date.now() + 3_600_000 }),
      origin: `http://127.0.0.1:${origin.port}`,
      hostHeader: "rewrite",
      backoff: { baseMs: 300, capMs: 600 },
      onState: log.push,
    });
    cleanups.push(() => sup.stop({ graceMs: 0 }));
    const r = await log.next("reconnecting");
    expect(r.code).toBe("unauthorized");
    await log.next("online", () => true, 15_000);
    expect(e.listenerCount("hc")).toBe(1);
    // the pure decision: inside the window a renewed token failing again is not permanent
    const unauthorized = handshakeError("listener", 401, "Unauthorized access.");
    expect(classify(unauthorized, "renew")).toMatchObject({ permanent: true });
    expect(classify(unauthorized, "renew", { rolePropagating: true })).toMatchObject({ fix: "renew", permanent: false });
  });

  test("admin action: rolePropagation on and off over HTTP", async () => {
    const e = await emulator({ hybridConnections: [{ path: "hc" }] });
    const post = (body: unknown) => fetch(`${e.httpUrl}/$emulator/faults`, { method: "POST", body: JSON.stringify(body) });
    expect((await post({ action: "rolePropagation", seconds: 30, status: 403 })).status).toBe(200);
    expect((await openError(listener(e, "hc"))).status).toBe(403);
    expect((await post({ action: "rolePropagation", off: true })).status).toBe(200);
    await listener(e, "hc").open();
    expect((await post({ action: "rolePropagation", seconds: "x" })).status).toBe(400);
  });
});

describe("role propagation by token kind, and through the CLI", () => {
  test("tokens: entra refuses only Entra tokens; SAS listeners are unaffected; off ends it", async () => {
    const secret = "roles-test-secret";
    const e = await emulator({ hybridConnections: [{ path: "hc" }], entra: { secret } });
    e.faults.rolePropagation({ seconds: 60, status: 403, tokens: "entra" });
    const now = Math.floor(Date.now() / 1000);
    const jwt = signTestJwt({ aud: "https://relay.azure.net/", exp: now + 600, roles: ["Azure Relay Listener"] }, secret);
    const entra = () => {
      const l = new HybridConnectionListener({ endpoint: e.endpoint, hcPath: "hc", token: jwt, autoRenew: false });
      l.on("error", () => {});
      cleanups.push(() => l.close());
      return l;
    };
    const err = await openError(entra());
    expect([err.code, err.status]).toEqual(["forbidden", 403]);
    await listener(e, "hc").open(); // SAS: fine
    e.faults.rolePropagation(false);
    await entra().open();
    expect(e.listenerCount("hc")).toBe(2);
  });

  test("azhexgate start --json while roles propagate: reconnecting (unauthorized) events, then ready, no loop, requests whole", async () => {
    const gw = await startGatewayChild();
    // the relay port, from a claim through the management API
    const h = { "x-azhexgate-apikey": API_KEY, "content-type": "application/json" };
    const claim = (await (await fetch(`${gw.apiUrl}/api/tunnels`, { method: "POST", headers: h, body: "{}" })).json()) as { id: string; relay_endpoint: string };
    await fetch(`${gw.apiUrl}/api/tunnels/${claim.id}`, { method: "DELETE", headers: h });
    const relayHttp = claim.relay_endpoint.replace(/^ws/, "http");
    const fault = await fetch(`${relayHttp}/$emulator/faults`, { method: "POST", body: JSON.stringify({ action: "rolePropagation", seconds: 3, status: 401 }) });
    expect(fault.status).toBe(200);
    const faultEnds = Date.now() + 3000;
    const body = "x".repeat(200_000);
    const app = startOrigin(() => new Response(body));
    cleanups.push(() => app.stop(true));
    const cli = spawnCli(["start", "--port", String(app.port), "--api-url", gw.apiUrl, "--json"], { env: { AZHEXGATE_API_KEY: API_KEY } });
    const first = await cli.waitEvent((ev) => ev.event === "state" && ev.state === "reconnecting", 10_000);
    expect(first.code).toBe("unauthorized");
    const ready = await cli.waitEvent((ev) => ev.event === "ready", 20_000);
    expect(Date.now() - faultEnds).toBeLessThan(10_000); // recovered within 10 s of the roles applying
    const reconnects = cli.events().filter((ev) => ev.event === "state" && ev.state === "reconnecting");
    expect(reconnects.length).toBeLessThanOrEqual(8); // backoff, not a loop
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${ready.public_url}/r${i}`);
      expect([res.status, (await res.text()).length]).toEqual([200, body.length]);
    }
    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
  });
});

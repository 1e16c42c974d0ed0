/**
 * The agent's supervisor: the one place that owns reconnects (craft.md, cloudflared). It claims a
 * tunnel (`connect`), holds the HC control channel with the grant's token, renews the token
 * before it expires (`renew` + `renewToken` in place), and on every loss decides from the
 * error's code what fixes it: a fresh token (expired / refused), a fresh claim (hybrid connection
 * gone), or just another try after a full-jitter backoff. A wall-clock jump (sleep / wake)
 * reconnects at once. Never gives up unless `exitOnFail`. Status flows out through `onState`.
 */
import type { RelayEndpoint } from "../hc/address.ts";
import { RelayError } from "../hc/errors.ts";
import { HybridConnectionListener, type ListenerOptions } from "../hc/listener.ts";
import { serveAccepts } from "./agent.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import { type Clock, realClock, type TimerHandle } from "./clock.ts";
import type { ForwardOptions } from "./forward.ts";
import type { TcpTarget } from "./forward-tcp.ts";
import { TunnelSessions } from "./sessions.ts";
import { classify, type Fix, renewDelay } from "./policy.ts";

/** What the management API hands out for one tunnel. `expiresAt` is the token's expiry in ms. */
export interface TunnelGrant {
  endpoint: RelayEndpoint;
  hcPath: string;
  token: string;
  expiresAt: number;
  publicUrl: string;
  sessionId: string;
}

export type RenewedToken = { token: string; expiresAt: number } & Partial<Omit<TunnelGrant, "token" | "expiresAt">>;

export type AgentState =
  | { state: "connecting"; attempt: number }
  | { state: "online"; publicUrl: string; sessionId: string }
  | { state: "reconnecting"; inMs: number; reason: string; code: string; attempt: number }
  | { state: "stopping"; inFlight: number; graceMs: number }
  | { state: "offline"; reason: string; error?: Error };

export type SupervisorLog = (event: string, fields?: Record<string, unknown>) => void;

export interface SupervisorOptions extends ForwardOptions {
  /** Claims the tunnel (or re-claims the same subdomain). Errors with `retryable: false` are permanent. */
  connect: () => Promise<TunnelGrant>;
  /**
   * A fresh listener token; `rejected` = the relay refused the current one (rotation / expiry).
   * May also return the tunnel's current endpoint / hcPath: when they moved, the supervisor reconnects there.
   */
  renew: (grant: TunnelGrant, o: { rejected: boolean }) => Promise<RenewedToken>;
  clock?: Clock;
  backoff?: Backoff | BackoffOptions;
  /** Stop (state `offline`, `closed` resolves with the error) on a permanent failure instead of retrying. */
  exitOnFail?: boolean;
  onState?: (s: AgentState) => void;
  log?: SupervisorLog;
  /** Per-stream window granted to the gateway (default 2 MiB). */
  window?: number;
  /** How often the clock is checked for a jump (default 5 s). */
  tickMs?: number;
  /** A tick this much later than due on the wall clock means the machine slept (default 15 s). */
  wakeDriftMs?: number;
  /** Measure the tunnel round trip every this many ms while online (default 15 s; 0 = never). */
  rttEveryMs?: number;
  /** Control-channel keep-alive (src/hc/listener.ts); tests shorten the interval. */
  keepAlive?: KeepAliveOptions;
  /** Tunnel-session liveness check interval, real time (default 10 s; sessions.ts). */
  sessionPingMs?: number;
  /** A TCP tunnel (`azhexgate tcp`): streams go to this host:port (sessions.ts). */
  tcpTarget?: TcpTarget;
}

export type KeepAliveOptions = Pick<ListenerOptions, "keepAliveMs" | "deadAfterIntervals" | "pingsBeforePong" | "keepAliveMemo">;

export interface SupervisorHandle {
  readonly state: AgentState;
  /** Last measured round trip over a tunnel session (agent ⇄ gateway), ms. */
  readonly rttMs: number | undefined;
  /** Streams in flight. */
  readonly inFlight: number;
  /** Resolves when supervision ends: null after `stop()`, the error after a permanent failure with `exitOnFail`. */
  readonly closed: Promise<Error | null>;
  /**
   * Graceful stop: GOAWAY on every session, close the control channel, let in-flight streams
   * finish up to `graceMs` (default 10 s), then close. A second call closes at once.
   */
  stop(opts?: { graceMs?: number }): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** `now`: reconnect at once, no backoff (wake, endpoint moved). */
type Ending = { err: Error; now?: boolean } | { stop: true } | { timeUp: true };

function moved(a: TunnelGrant, b: TunnelGrant): boolean {
  return a.hcPath !== b.hcPath || a.endpoint.host !== b.endpoint.host || a.endpoint.scheme !== b.endpoint.scheme;
}

export function superviseAgent(o: SupervisorOptions): SupervisorHandle {
  const clock = o.clock ?? realClock;
  const backoff = o.backoff instanceof Backoff ? o.backoff : new Backoff(o.backoff);
  const log: SupervisorLog = o.log ?? (() => {});
  const sessions = new TunnelSessions({
    ...o,
    clock,
    pingMs: o.sessionPingMs,
    onEvict: (inFlight) => log("session evicted", { reason: "no answer to tunnel pings", inFlight }),
  });
  const tickMs = o.tickMs ?? 5000;
  const wakeDriftMs = o.wakeDriftMs ?? 15_000;
  const rttEveryMs = o.rttEveryMs ?? 15_000;

  let state: AgentState = { state: "connecting", attempt: 0 };
  let rttMs: number | undefined;
  let grant: TunnelGrant | undefined;
  let listener: HybridConnectionListener | undefined;
  let stopping = false;
  let failed = false;
  let stopPromise: Promise<void> | undefined;
  /** Ends the current phase (online wait or backoff sleep). */
  let endPhase: ((e: Ending) => void) | null = null;
  let renewTimer: TimerHandle | undefined;
  let tickTimer: TimerHandle | undefined;
  let lastTick = clock.now();
  let lastRtt = clock.now();
  const { promise: closed, resolve: finish } = Promise.withResolvers<Error | null>();
  const { promise: hard, resolve: hardResolve } = Promise.withResolvers<void>();
  let hardStopped = false;
  const hardStop = () => {
    hardStopped = true;
    hardResolve();
    sessions.cut();
  };

  const set = (s: AgentState) => {
    state = s;
    try {
      o.onState?.(s);
    } catch {
      // a throwing observer must not break supervision
    }
  };

  // ---- wall-clock jump detection + rtt ----
  const tick = () => {
    const now = clock.now();
    const late = now - lastTick - tickMs;
    lastTick = now;
    if (late > wakeDriftMs) {
      log("clock jump", { driftMs: late });
      endPhase?.({ err: new RelayError("network", `the clock jumped ${Math.round(late / 1000)} s (sleep / wake?)`, true), now: true });
      void sessions.pruneSilent().then((n) => n && log("sessions pruned", { count: n }));
    } else if (rttEveryMs > 0 && state.state === "online" && now - lastRtt >= rttEveryMs) {
      lastRtt = now;
      void sessions.rtt().then((ms) => {
        if (ms !== undefined) rttMs = Math.round(ms * 10) / 10;
      });
    }
    if (!stopping) tickTimer = clock.setTimeout(tick, tickMs);
  };
  tickTimer = clock.setTimeout(tick, tickMs);

  // ---- token renewal ----
  let issuedAt = clock.now();
  const adopt = (g: TunnelGrant) => {
    grant = g;
    issuedAt = clock.now();
  };
  const scheduleRenew = () => {
    clock.clearTimeout(renewTimer);
    if (!grant || stopping) return;
    const ms = renewDelay(issuedAt, grant.expiresAt, clock.now());
    renewTimer = clock.setTimeout(() => void renewNow(), ms);
  };
  const renewNow = async () => {
    const g = grant;
    const l = listener;
    if (!g || !l || stopping) return;
    try {
      const t = await o.renew(g, { rejected: false });
      if (grant !== g) return; // re-claimed meanwhile
      adopt({ ...g, ...t });
      if (moved(g, grant!)) {
        log("tunnel moved", { hcPath: grant!.hcPath });
        endPhase?.({ err: new RelayError("closed", "the tunnel moved to another relay endpoint", true), now: true });
        return;
      }
      if (listener === l && l.isOpen) await l.renewToken(t.token);
      log("token renewed", { hcPath: g.hcPath, expiresInMs: t.expiresAt - clock.now() });
      scheduleRenew();
    } catch (e) {
      log("token renewal failed", { hcPath: g.hcPath, error: (e as Error).message });
      // try again halfway to expiry; if it expires first, the relay closes with 1008 and the loop renews
      const left = g.expiresAt - clock.now();
      if (left > 1000 && listener === l) renewTimer = clock.setTimeout(() => void renewNow(), Math.max(500, left / 2));
    }
  };

  const phase = (arm: (end: (e: Ending) => void) => void) =>
    new Promise<Ending>((resolve) => {
      if (stopping) return resolve({ stop: true });
      let done = false;
      endPhase = (e) => {
        if (done) return;
        done = true;
        endPhase = null;
        resolve(e);
      };
      arm(endPhase);
    });

  /** Waits `ms` on the clock; a wake ends it early. */
  const sleep = async (ms: number): Promise<Ending> => {
    if (ms <= 0) return { timeUp: true };
    let t: TimerHandle | undefined;
    const e = await phase((end) => (t = clock.setTimeout(() => end({ timeUp: true }), ms)));
    clock.clearTimeout(t);
    return e;
  };

  async function openListener(g: TunnelGrant): Promise<HybridConnectionListener> {
    const l = new HybridConnectionListener({ ...o.keepAlive, endpoint: g.endpoint, hcPath: g.hcPath, token: g.token, autoRenew: false });
    serveAccepts(l, sessions);
    l.on("error", (err) => log("listener error", { code: err.code, error: err.message }));
    l.on("keepAlive", (mode, why) => log("keep-alive fallback", { mode, why }));
    await l.open();
    return l;
  }

  async function run(): Promise<Error | null> {
    let fix: Fix = "connect";
    let attempt = 0;
    while (!stopping) {
      set({ state: "connecting", attempt });
      let ending: Ending;
      let tried: Fix = fix;
      try {
        if (fix === "connect" || !grant) {
          tried = "connect";
          adopt(await o.connect());
        } else if (fix === "renew" || grant.expiresAt - clock.now() < 1000) {
          tried = fix === "renew" ? "renew" : "none";
          adopt({ ...grant, ...(await o.renew(grant, { rejected: fix === "renew" })) });
        }
        if (stopping) break;
        const g = grant!;
        const l = await openListener(g);
        if (stopping) {
          void l.close();
          break;
        }
        listener = l;
        backoff.succeeded(clock.now());
        attempt = 0;
        set({ state: "online", publicUrl: g.publicUrl, sessionId: g.sessionId });
        log("online", { hcPath: g.hcPath, publicUrl: g.publicUrl, relay: g.endpoint.host });
        scheduleRenew();
        ending = await phase((end) => l.on("close", (err) => end({ err: err ?? new RelayError("closed", "control channel closed", true) })));
        clock.clearTimeout(renewTimer);
        listener = undefined;
        if ("err" in ending && ending.now) void l.close();
      } catch (e) {
        ending = { err: e instanceof Error ? e : new Error(String(e)) };
      }
      if (!("err" in ending) || stopping) break;
      const d = classify(ending.err, tried);
      log("disconnected", { code: d.code, permanent: d.permanent, fix: d.fix, error: ending.err.message });
      if (d.permanent && o.exitOnFail) {
        set({ state: "offline", reason: ending.err.message, error: ending.err });
        sessions.closeAll(1001, "agent failed");
        return ending.err;
      }
      fix = d.fix;
      attempt++;
      const inMs = ending.now ? 0 : backoff.next(clock.now());
      set({ state: "reconnecting", inMs, reason: ending.err.message, code: d.code, attempt });
      const slept = await sleep(inMs);
      if (stopping) break;
      if ("err" in slept) set({ state: "reconnecting", inMs: 0, reason: slept.err.message, code: (slept.err as RelayError).code ?? "network", attempt });
    }
    return null;
  }

  const running = run().catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  void running.then((err) => {
    if (err) {
      failed = true;
      stopping = true;
      clock.clearTimeout(tickTimer);
      clock.clearTimeout(renewTimer);
      finish(err);
    }
  });

  const handle: SupervisorHandle = {
    get state() {
      return state;
    },
    get rttMs() {
      return rttMs;
    },
    get inFlight() {
      return sessions.inFlight;
    },
    closed,
    stop({ graceMs = 10_000 } = {}) {
      if (failed) return Promise.resolve();
      if (stopPromise) {
        hardStop();
        return stopPromise;
      }
      stopping = true;
      clock.clearTimeout(tickTimer);
      clock.clearTimeout(renewTimer);
      endPhase?.({ stop: true });
      const l = listener;
      listener = undefined;
      stopPromise = (async () => {
        set({ state: "stopping", inFlight: sessions.inFlight, graceMs });
        sessions.goAway(); // the gateway routes nothing new here…
        await Promise.race([l?.close(), hard]); // …and no new rendezvous reach us
        const cut = await sessions.drain(hardStopped ? 0 : graceMs);
        log("stopped", { cutStreams: cut });
        set({ state: "offline", reason: "stopped" });
        finish(null);
      })();
      return stopPromise;
    },
    [Symbol.asyncDispose]: () => handle.stop(),
  };
  return handle;
}

/**
 * Fault switches for tests (design.md §4): drop control channels (with a close code or abruptly),
 * refuse / delay / blackhole rendezvous, expire tokens, delete an entity, and the liveness faults
 * of liveness-faults.ts (pings unanswered or closed on, daily restart, a blackholed connection,
 * sender-token expiry). The same switches are
 * reachable over HTTP (`POST /$emulator/faults`, loopback only) for child-process tests.
 */
import type { EntityStore } from "./entities.ts";
import type { ListenerRegistry } from "./control.ts";
import type { LivenessFaultState } from "./liveness-faults.ts";
import { authFaults, resetAuthFaults } from "./auth.ts"; // issue 10

export interface Faults {
  /** Returns how many were dropped; "abrupt" = terminate TCP without a close frame. Default close code 1011. */
  dropControlChannels(hcPath?: string, how?: { code?: number; reason?: string } | "abrupt"): number;
  /** While set, rendezvous connects from listeners (accept and HTTP) are answered with this status. */
  refuseAccepts(hcPath: string | undefined, status: number | false): void;
  /** Delay forwarding `accept` (and HTTP `request`) to the listener. */
  delayAccepts(ms: number): void;
  /** Rendezvous upgrades are held and never answered (until switched off / the window closes). */
  blackholeRendezvous(on: boolean): void;
  /** Close matching control channels with 1008 as if their token expired. */
  expireTokens(hcPath?: string): number;
  /** entities.delete → listeners get close 1001. */
  deleteHc(hcPath: string): boolean;

  // ---- liveness faults (issue 10; state in liveness-faults.ts) ----
  /** While on, matching control channels' pings go unanswered (the emulator stops reading them). Returns channels changed. */
  pingsUnanswered(hcPath: string | undefined, on: boolean): number;
  /** While set, a matching control channel that pings is closed: with `how` (a close code) or "abrupt"ly; false = off. */
  closeOnPing(hcPath: string | undefined, how: number | "abrupt" | false): void;
  /** The daily restart: every matching control channel closes with 1011 "NameRenewalFailed". Returns count. */
  restartListeners(hcPath?: string): number;
  /** The oldest established connection of `hcPath` stops forwarding both ways, close frames included. Returns 0 or 1. */
  blackholeConnection(hcPath?: string): number;
  /** While on, established connections close with 1008 when their sender's token expires. */
  senderTokenExpiry(on: boolean): void;
  // ---- end liveness faults ----

  // ---- issue 10 (relayerr): quota answer and role propagation ----
  /** The status a listener over the per-HC limit gets: 403 + quota description (default) or 429. */
  listenerQuotaStatus(status: 403 | 429): void;
  /**
   * For the next `seconds`, valid tokens (`tokens`: entra, sas or all; default all) are refused
   * with `status` (default 401) as while a role assignment propagates; false ends it at once.
   */
  rolePropagation(o: { seconds: number; status?: 401 | 403; tokens?: "entra" | "sas" | "all" } | false): void;
  /** Refusals the role-propagation window has caused so far. */
  rolePropagationRefusals(): number;
  // ---- end issue 10 block ----
  reset(): void;
}

/** The switches' state, read by the rendezvous / connect / http paths. */
export class FaultState {
  private readonly refused = new Map<string, number>();
  delayAcceptMs = 0;
  blackhole = false;
  private readonly waiters = new Set<() => void>();

  refuse(hcPath: string | undefined, status: number | false): void {
    const key = hcPath === undefined ? "*" : hcPath.replace(/^\/+|\/+$/g, "").toLowerCase();
    if (status === false) this.refused.delete(key);
    else this.refused.set(key, status);
  }

  /** The injected status for a rendezvous on `path` (entity path, maybe with a suffix), if any. */
  refusedStatus(path: string): number | undefined {
    const p = path.replace(/^\/+|\/+$/g, "").toLowerCase();
    for (const [key, status] of this.refused) if (key === "*" || p === key || p.startsWith(`${key}/`)) return status;
    return undefined;
  }

  setBlackhole(on: boolean): void {
    this.blackhole = on;
    if (!on) this.release();
  }

  /** Resolves when the blackhole is switched off, after `maxMs`, or when `signal` aborts. */
  whileBlackholed(maxMs: number, signal?: AbortSignal): Promise<void> {
    if (!this.blackhole) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, maxMs);
      this.waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  reset(): void {
    this.refused.clear();
    this.delayAcceptMs = 0;
    this.setBlackhole(false);
  }

  release(): void {
    for (const w of [...this.waiters]) w();
  }
}

export function createFaults(state: FaultState, listeners: ListenerRegistry, entities: EntityStore, liveness: LivenessFaultState): Faults {
  return {
    dropControlChannels: (hcPath, how) => listeners.drop(hcPath, how),
    refuseAccepts: (hcPath, status) => state.refuse(hcPath, status),
    delayAccepts: (ms) => {
      state.delayAcceptMs = Math.max(0, ms);
    },
    blackholeRendezvous: (on) => state.setBlackhole(on),
    expireTokens: (hcPath) => listeners.expire(hcPath),
    deleteHc: (hcPath) => entities.delete(hcPath),
    // ---- liveness faults (issue 10) ----
    pingsUnanswered: (hcPath, on) => listeners.pingsUnanswered(hcPath, on),
    closeOnPing: (hcPath, how) => listeners.closeOnPing(hcPath, how),
    restartListeners: (hcPath) => listeners.restart(hcPath),
    blackholeConnection: (hcPath) => liveness.blackholeOne(hcPath),
    senderTokenExpiry: (on) => liveness.setSenderTokenExpiry(on),
    // ---- end liveness faults ----
    // ---- issue 10 (relayerr): quota answer and role propagation ----
    listenerQuotaStatus: (status) => {
      authFaults(entities).listenerQuotaStatus = status === 429 ? 429 : 403;
    },
    rolePropagation: (o) => {
      authFaults(entities).rolePropagation =
        o === false ? undefined : { until: Date.now() + Math.max(0, o.seconds) * 1000, status: o.status === 403 ? 403 : 401, tokens: o.tokens ?? "all", refused: 0 };
    },
    rolePropagationRefusals: () => authFaults(entities).rolePropagation?.refused ?? 0,
    // ---- end issue 10 block ----
    reset: () => {
      state.reset();
      liveness.reset();
      listeners.resumeAll();
      resetAuthFaults(entities); // issue 10
    },
  };
}

/** Applies one `POST /$emulator/faults` body; throws a TypeError for a bad action. */
export function applyFaultAction(faults: Faults, body: Record<string, unknown>): unknown {
  const hcPath = typeof body.hcPath === "string" ? body.hcPath : undefined;
  switch (body.action) {
    case "dropControlChannels": {
      const how =
        body.how === "abrupt"
          ? "abrupt"
          : { code: typeof body.code === "number" ? body.code : undefined, reason: typeof body.reason === "string" ? body.reason : undefined };
      return faults.dropControlChannels(hcPath, how);
    }
    case "refuseAccepts":
      faults.refuseAccepts(hcPath, typeof body.status === "number" ? body.status : false);
      return true;
    case "delayAccepts":
      faults.delayAccepts(typeof body.ms === "number" ? body.ms : 0);
      return true;
    case "blackholeRendezvous":
      faults.blackholeRendezvous(body.on === true);
      return true;
    case "expireTokens":
      return faults.expireTokens(hcPath);
    case "deleteHc":
      if (!hcPath) throw new TypeError("deleteHc needs hcPath");
      return faults.deleteHc(hcPath);
    // ---- liveness faults (issue 10) ----
    case "pingsUnanswered":
      return faults.pingsUnanswered(hcPath, body.on !== false);
    case "closeOnPing":
      faults.closeOnPing(hcPath, body.on === false ? false : typeof body.code === "number" ? body.code : "abrupt");
      return true;
    case "restartListeners":
      return faults.restartListeners(hcPath);
    case "blackholeConnection":
      return faults.blackholeConnection(hcPath);
    case "senderTokenExpiry":
      faults.senderTokenExpiry(body.on !== false);
      return true;
    // ---- end liveness faults ----
    // ---- issue 10 (relayerr) ----
    case "listenerQuotaStatus":
      if (body.status !== 403 && body.status !== 429) throw new TypeError("listenerQuotaStatus needs status 403 or 429");
      faults.listenerQuotaStatus(body.status);
      return true;
    case "rolePropagation": {
      if (body.seconds === false || body.off === true) {
        faults.rolePropagation(false);
        return true;
      }
      if (typeof body.seconds !== "number" || !(body.seconds >= 0)) throw new TypeError("rolePropagation needs seconds (a number) or off: true");
      const tokens = body.tokens === "entra" || body.tokens === "sas" ? body.tokens : "all";
      faults.rolePropagation({ seconds: body.seconds, status: body.status === 403 ? 403 : 401, tokens });
      return true;
    }
    // ---- end issue 10 block ----
    case "reset":
      faults.reset();
      return true;
    default:
      throw new TypeError(`unknown fault action ${JSON.stringify(body.action)}`);
  }
}

/**
 * Role assignments that are "not yet effective". Azure RBAC role assignments made by a deployment
 * (the gateway's managed identity on the relay namespace, on the Key Vault) reach the services a
 * few minutes later: Microsoft documents "up to 10 minutes" for Azure RBAC changes in general
 * (https://learn.microsoft.com/en-us/azure/role-based-access-control/troubleshooting, "Symptom -
 * Role assignment changes are not being detected": up to 10 min, 30 min for some cached cases),
 * "up to five minutes" for Relay's data plane
 * (https://learn.microsoft.com/en-us/azure/azure-relay/authenticate-managed-identity), and ARM
 * answers such calls with 403 AuthorizationFailed "... If access was recently granted, please
 * refresh your credentials." Key Vault answers 403 Forbidden (or 401 while the token is refused)
 * — https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes.
 *
 * So for a window after the gateway starts (default 10 min, AZHEXGATE_ROLE_PROPAGATION_SECONDS),
 * a 401/403 from ARM or Key Vault is retried with backoff and logged once per kind as
 * "role assignment not yet effective (…); retrying". After the window it is what it says.
 */

export const DEFAULT_ROLE_PROPAGATION_MS = 10 * 60_000;

export type NoteLog = (message: string, fields: Record<string, unknown>) => void;

export interface RolePropagation {
  /** True while a 401/403 may still be a role assignment on its way. */
  pending(): boolean;
  /** Logs "role assignment not yet effective (kind); retrying" the first time for each kind. */
  note(kind: string, detail: string): void;
  readonly windowMs: number;
}

export function rolePropagation(o: { windowMs?: number; now?: () => number; log?: NoteLog; startedAt?: number } = {}): RolePropagation {
  const now = o.now ?? Date.now;
  const windowMs = o.windowMs ?? DEFAULT_ROLE_PROPAGATION_MS;
  const startedAt = o.startedAt ?? now();
  const noted = new Set<string>();
  return {
    windowMs,
    pending: () => now() - startedAt < windowMs,
    note(kind, detail) {
      if (noted.has(kind)) return;
      noted.add(kind);
      const left = Math.max(0, Math.round((startedAt + windowMs - now()) / 1000));
      o.log?.(`role assignment not yet effective (${kind}); retrying`, { kind, detail, retrying_for_s: left });
    },
  };
}

/** A propagation window that is already over: 401/403 are final at once. */
export const NO_PROPAGATION: RolePropagation = { windowMs: 0, pending: () => false, note: () => {} };

export interface RetryOptions {
  rp: RolePropagation;
  /** What is being called, e.g. "ARM 403 on Microsoft.Relay"; one log line per kind. */
  kind: (status: number) => string;
  /** HTTP status of a failure (undefined = not an HTTP answer: not retried here). */
  statusOf: (err: unknown) => number | undefined;
  /** Longest this one call keeps retrying (default 20 s: under the agent API client's 30 s timeout), so an API request does not hang for minutes. */
  budgetMs?: number;
  firstDelayMs?: number;
  maxDelayMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Runs `fn`; while the window is open and it fails with 401/403, waits (doubling from
 * `firstDelayMs`, capped at `maxDelayMs`) and tries again, within `budgetMs`. Any other
 * failure, or a 401/403 once the window or the budget is over, is thrown unchanged.
 */
export async function retryWhileRolePropagates<T>(fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => Bun.sleep(ms));
  const deadline = now() + (o.budgetMs ?? 20_000);
  let delay = o.firstDelayMs ?? 1000;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const status = o.statusOf(err);
      if ((status !== 401 && status !== 403) || !o.rp.pending() || attempt >= 100) throw err;
      const wait = Math.min(delay, o.maxDelayMs ?? 15_000);
      if (now() + wait > deadline) throw err;
      o.rp.note(o.kind(status), err instanceof Error ? err.message : String(err));
      await sleep(wait);
      delay *= 2;
    }
  }
}

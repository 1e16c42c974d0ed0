/**
 * The gateway's HC sender dials, authenticated with the relay binding's sender credential (an
 * Entra token in Azure, SAS locally). When the relay answers 401 the token is fetched again at
 * once (`forceRefresh`) and the dial retried once: a revoked or rotated credential heals without
 * waiting for the cache to expire.
 *
 * Roles propagating: Azure role assignments "can take up to five minutes to propagate" (relay
 * authenticate-application.md, relay-roles.md), so right after a deployment the gateway's identity
 * may be refused (401 / 403) although its assignment is correct. For the first `rolePropagationMs`
 * after the dialer is made (the gateway's start; default 5 min in Azure mode, off locally) a 401 /
 * 403 is retried with backoff inside the dial, up to `propagationDialBudgetMs` per dial (well under
 * the gateway's first-byte limit), before it is reported; the final error says roles may still be
 * propagating. After the window a 401 / 403 is the caller's error at once (after the one refresh).
 * A 403 that names a quota is `listener_limit`, never retried here.
 */
import type { RelayBinding } from "../control/types.ts";
import { RelayError } from "../hc/errors.ts";
import { connectSender, type SenderOptions } from "../hc/sender.ts";
import type { WsConnection } from "../ws/client.ts";

export type SenderDialOptions = Omit<SenderOptions, "endpoint" | "hcPath" | "token" | "forceRefresh">;

/** Azure's documented worst case for a role assignment to take effect. */
export const ROLE_PROPAGATION_MS = 5 * 60_000;

export interface SenderDialerOptions extends SenderDialOptions {
  /** Called when a dial was refused with 401 and is retried with a fresh token. */
  onUnauthorized?: (hcPath: string, err: RelayError) => void;
  /** 401 / 403 are retried this long after the dialer is made (default: 5 min in Azure mode, 0 locally). */
  rolePropagationMs?: number;
  /** Most time one dial spends retrying 401 / 403 inside that window (default 20 s). */
  propagationDialBudgetMs?: number;
  /** Called before each such retry (for a log line). */
  onPropagating?: (hcPath: string, err: RelayError, attempt: number) => void;
  /** Clock and sleep, for tests. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** A relay 401 / 403 on the handshake (not a failure to get a token, which has no status; not a quota). */
function isAuthRefusal(err: unknown): err is RelayError {
  return err instanceof RelayError && ((err.code === "unauthorized" && err.status === 401) || (err.code === "forbidden" && err.status === 403));
}

/** `(hcPath) => WsConnection` for the session pool: one forced refresh on 401; 401 / 403 retried while roles propagate. */
export function senderDialer(binding: RelayBinding, opts: SenderDialerOptions = {}): (hcPath: string) => Promise<WsConnection> {
  const { onUnauthorized, onPropagating, rolePropagationMs, propagationDialBudgetMs, now: nowOpt, sleep: sleepOpt, ...senderOpts } = opts;
  const now = nowOpt ?? Date.now;
  const sleep = sleepOpt ?? ((ms: number) => Bun.sleep(ms));
  const windowMs = rolePropagationMs ?? (binding.mode === "azure" ? ROLE_PROPAGATION_MS : 0);
  const budgetMs = propagationDialBudgetMs ?? 20_000;
  const startedAt = now();

  return async (hcPath) => {
    const dial = (forceRefresh: boolean) =>
      connectSender({ ...senderOpts, endpoint: binding.endpoint, hcPath, token: binding.senderToken, forceRefresh });
    let refreshed = false;
    let attempt = 0;
    const deadline = now() + budgetMs;
    for (;;) {
      try {
        return await dial(false);
      } catch (err) {
        if (!isAuthRefusal(err)) throw err;
        if (err.status === 401 && !refreshed) {
          refreshed = true;
          onUnauthorized?.(hcPath, err);
          try {
            return await dial(true);
          } catch (again) {
            if (!isAuthRefusal(again)) throw again;
            err = again;
          }
        }
        const e = err as RelayError;
        const inWindow = now() - startedAt < windowMs;
        if (!inWindow) throw e;
        const left = deadline - now();
        if (left <= 0) {
          const until = new Date(startedAt + windowMs).toISOString();
          throw new RelayError(
            e.code,
            `${e.message}; the gateway started ${Math.round((now() - startedAt) / 1000)} s ago and role assignments can take up to 5 minutes to apply: it keeps retrying 401 / 403 until ${until}`,
            true,
            { ...e.details, cause: e },
          );
        }
        attempt++;
        onPropagating?.(hcPath, e, attempt);
        await sleep(Math.min(left, 250 * 2 ** Math.min(attempt - 1, 4))); // 0.25, 0.5, 1, 2, 4, 4 … s
      }
    }
  };
}

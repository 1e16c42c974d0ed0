/**
 * The gateway's HC sender dials, authenticated with the relay binding's sender credential (an
 * Entra token in Azure, SAS locally). When the relay answers 401 the token is fetched again at
 * once (`forceRefresh`) and the dial retried exactly once: a revoked or rotated credential heals
 * without waiting for the cache to expire; a second 401 is the caller's error.
 */
import type { RelayBinding } from "../control/types.ts";
import { RelayError } from "../hc/errors.ts";
import { connectSender, type SenderOptions } from "../hc/sender.ts";
import type { WsConnection } from "../ws/client.ts";

export type SenderDialOptions = Omit<SenderOptions, "endpoint" | "hcPath" | "token" | "forceRefresh">;

export interface SenderDialerOptions extends SenderDialOptions {
  /** Called when a dial was refused with 401 and is retried with a fresh token. */
  onUnauthorized?: (hcPath: string, err: RelayError) => void;
}

/** A relay 401 on the handshake (not a failure to get a token, which has no status). */
function isRelay401(err: unknown): err is RelayError {
  return err instanceof RelayError && err.code === "unauthorized" && err.status === 401;
}

/** `(hcPath) => WsConnection` for the session pool: dial with the binding's senderToken, one forced refresh on 401. */
export function senderDialer(binding: RelayBinding, opts: SenderDialerOptions = {}): (hcPath: string) => Promise<WsConnection> {
  const { onUnauthorized, ...senderOpts } = opts;
  return async (hcPath) => {
    const dial = (forceRefresh: boolean) =>
      connectSender({ ...senderOpts, endpoint: binding.endpoint, hcPath, token: binding.senderToken, forceRefresh });
    try {
      return await dial(false);
    } catch (err) {
      if (!isRelay401(err)) throw err;
      onUnauthorized?.(hcPath, err);
      return dial(true);
    }
  };
}

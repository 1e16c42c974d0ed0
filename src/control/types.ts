/**
 * Seams between the management API and the relay: creating hybrid connections, signing the
 * agent's listener tokens, and the gateway's own credential. Local mode implements them against
 * the relay emulator; Azure mode with `@azure/arm-relay` and `@azure/identity` (loaded lazily).
 */
import type { RelayEndpoint } from "../hc/address.ts";
import type { TokenProvider } from "../hc/tokens.ts";

/** A hybrid connection as the namespace lists it (times in ms since the epoch, when known). */
export interface HcInfo {
  name: string;
  createdAt?: number;
  updatedAt?: number;
}

export interface Provisioner {
  /** Creates hybrid connection `hcPath` (idempotent) with a Listen-only SAS rule for agents. */
  ensure(hcPath: string): Promise<void>;
  /** Deletes it (idempotent). */
  remove(hcPath: string): Promise<void>;
  /** Every hybrid connection of the namespace (the reconciler's view); absent when the binding cannot list. */
  list?(): Promise<HcInfo[]>;
}

export interface ListenerTokenIssuer {
  /**
   * A SAS token scoped to one hybrid connection with the Listen right only, valid `ttlSeconds`.
   * Secrets stay in memory; the token is the only thing that leaves.
   */
  issue(hcPath: string, ttlSeconds: number): Promise<{ token: string; expiresAt: number }>;
  /**
   * A SAS token scoped to one hybrid connection with the Send right only (issue 16: `azhexgate
   * connect` dials the relay as a sender). Absent when the binding cannot sign one.
   */
  issueSend?(hcPath: string, ttlSeconds: number): Promise<{ token: string; expiresAt: number }>;
  /** The relay rejected a token signed with the current key (rotation): re-read keys now. */
  invalidate(hcPath?: string): void;
}

/** Everything the gateway and the management API need to talk to one relay namespace. */
export interface RelayBinding {
  readonly mode: "local" | "azure";
  readonly endpoint: RelayEndpoint;
  readonly provisioner: Provisioner;
  readonly issuer: ListenerTokenIssuer;
  /** The gateway's sender credential (Entra token in Azure, SAS in local mode). */
  readonly senderToken: TokenProvider;
  close(): Promise<void>;
}

/**
 * The tunnel registry: what the management API and every gateway instance share. One interface,
 * two real stores (bun:sqlite — the embedded default, a file — and Redis). All times are
 * milliseconds since the epoch. Keys are never stored: owners are identified by `keyId`, a
 * one-way hash of the API key.
 */
import type { TunnelPolicy } from "../policy/types.ts";

export type { BasicAuthEntry, TunnelPolicy } from "../policy/types.ts";

export interface TunnelRecord {
  /** The subdomain label: 13 random base32 characters (a-z, 2-7), or a reserved name `[a-z0-9-]{3,40}`. */
  id: string;
  /** Owner: hash of the API key that created it. */
  keyId: string;
  /** Hybrid connection the agent listens on, `hc-{id}`. */
  hcPath: string;
  /** True when the id is a reserved name (owned by `keyId` beyond this tunnel's life). */
  reserved: boolean;
  /** The current agent session; a reclaim by the owner replaces it (the stale agent is cut). */
  sessionId: string;
  /** The local port the agent said it forwards to (informational). */
  localPort?: number;
  createdAt: number;
  /** Last sign of life from the agent (creation, token renewal, heartbeat). */
  lastSeenAt: number;
  /** Idle deadline: the tunnel is reclaimed after this unless renewed. */
  expiresAt: number;
  /** Access policy and limits enforced at the gateway (absent: anyone, operator limits). */
  policy?: TunnelPolicy;
  /** Present on TCP tunnels (issue 16, `azhexgate tcp`): who besides the owner and admins may connect. */
  tcp?: TcpSettings;
}

/** A TCP tunnel's settings: the key ids / user ids (besides the owner and admins) that may get a Send token. */
export interface TcpSettings {
  allow: string[];
}

export interface TunnelRegistry {
  /** Inserts a tunnel; false when the id is taken (atomic). */
  create(rec: TunnelRecord): Promise<boolean>;
  get(id: string): Promise<TunnelRecord | undefined>;
  /** Applies `patch` to an existing tunnel; undefined when it does not exist. */
  update(id: string, patch: Partial<Omit<TunnelRecord, "id">>): Promise<TunnelRecord | undefined>;
  delete(id: string): Promise<boolean>;
  /** All tunnels, or those of one owner. */
  list(filter?: { keyId?: string }): Promise<TunnelRecord[]>;
  /** Tunnels whose `expiresAt` is at or before `now`. */
  expired(now: number): Promise<TunnelRecord[]>;
  /**
   * Binds a reserved name to an owner: "ok" when `keyId` now owns it (first claim, or already
   * its own), "taken" when another key owns it (atomic across gateway instances).
   */
  claimName(name: string, keyId: string): Promise<"ok" | "taken">;
  /** The owner of a reserved name, if any. */
  nameOwner(name: string): Promise<string | undefined>;
  /** Frees a reserved name if `keyId` still owns it (atomic); false when it did not. */
  releaseName(name: string, keyId: string): Promise<boolean>;
  close(): Promise<void>;
}

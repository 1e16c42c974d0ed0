/**
 * The tunnel service: the management API's business rules, independent of HTTP. Allocates ids
 * (13 random base32 characters, or a reserved name owned by the caller's key), provisions `hc-{id}`, issues
 * Listen-only tokens, renews them per agent session, and reclaims idle tunnels (`sweep`).
 *
 * Lifetimes: a listener token lives `tokenTtlSeconds` (default 1 h); a tunnel lives `idleTtlMs`
 * (default 2 h) past its last sign of life (creation or token request), which must be at least
 * twice the token TTL so an agent that renews once per token lifetime is never swept.
 */
import { randomInt, randomUUID } from "node:crypto";
import type { ListenerTokenIssuer, Provisioner } from "../control/types.ts";
import type { Logger } from "../log.ts";
import type { TcpSettings, TunnelPolicy, TunnelRecord, TunnelRegistry } from "../registry/types.ts";
import { ApiError, invalid, notFound } from "./errors.ts";

/**
 * A 409 that passes by itself (a reclaim race) carries Retry-After; one that stays true however
 * often it is retried (reserved by another key) does not. Clients read the header, not the words.
 */
const RETRY_SOON = { headers: { "retry-after": "1" } };

export interface TunnelServiceOptions {
  registry: TunnelRegistry;
  provisioner: Provisioner;
  issuer: ListenerTokenIssuer;
  /** Listener token lifetime in seconds (default 3600). */
  tokenTtlSeconds?: number;
  /** Idle lifetime of a tunnel in ms (default 2 h; at least 2 × the token TTL). */
  idleTtlMs?: number;
  now?: () => number;
  /** Random id source (tests force collisions); default 13 crypto-random base32 characters. */
  randomId?: () => string;
  /** Tunnels one API key may hold at once (AZHEXGATE_MAX_TUNNELS_PER_KEY); 0 / absent = no limit. */
  maxTunnelsPerKey?: number;
  log?: Logger;
}

export interface CreateInput {
  subdomain?: string;
  localPort?: number;
  /** Access policy and limits (already validated and hashed: src/policy/spec.ts). */
  policy?: TunnelPolicy;
  /** A TCP tunnel (`azhexgate tcp`): who else may connect. */
  tcp?: TcpSettings;
}

export interface IssuedTunnel {
  tunnel: TunnelRecord;
  token: string;
  /** Token expiry, ms since the epoch. */
  tokenExpiresAt: number;
}

export const DEFAULT_TOKEN_TTL_SECONDS = 3600;
export const DEFAULT_IDLE_TTL_MS = 2 * 3600_000;

const NAME = /^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$/;
/** Names that would shadow the apex, infrastructure or common service hosts. */
export const RESERVED_WORDS: ReadonlySet<string> = new Set(
  "api www admin app apps root mail smtp imap pop ftp ssh dns ns ns1 ns2 mx status health healthz readyz metrics login auth oauth sso account accounts dashboard console portal docs help support static cdn assets relay gateway tunnel tunnels azhexgate localhost test"
    .split(" "),
);

/** Checks a requested name; throws 400 `invalid_request` (field `subdomain`) with the rule broken. */
export function validateSubdomain(name: string): string {
  const n = name.toLowerCase();
  if (!NAME.test(n)) {
    throw invalid("subdomain", "subdomain must be 3-40 characters of a-z, 0-9 and '-', starting and ending with a letter or digit.");
  }
  if (/^\d+$/.test(n)) throw invalid("subdomain", "subdomain cannot be all digits (those are random tunnel ids); add a letter.");
  if (RANDOM_ID.test(n)) throw invalid("subdomain", "subdomain cannot have the shape of a random tunnel id (13 characters of a-z and 2-7 with a digit); make it longer or shorter.");
  if (n.includes("--")) throw invalid("subdomain", "subdomain cannot contain '--' (reserved for punycode and internal names).");
  if (RESERVED_WORDS.has(n)) throw invalid("subdomain", `subdomain "${n}" is reserved; pick another name.`);
  return n;
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
/** The shape of a random tunnel id: 13 characters of RFC 4648 base32 (lower case), at least one digit. */
export const RANDOM_ID = /^(?=[a-z2-7]*[2-7])[a-z2-7]{13}$/;

/**
 * 13 crypto-random base32 characters (a-z, 2-7): ~64.9 bits of entropy (65 bits, less the
 * redraws that keep at least one digit, which tells them apart from a reserved name). A DNS label,
 * short enough to type, and not enumerable (issue 12: 8–10 digits were 27–33 bits).
 */
export function randomTunnelId(): string {
  for (;;) {
    let id = "";
    for (let i = 0; i < 13; i++) id += BASE32[randomInt(32)];
    if (RANDOM_ID.test(id)) return id;
  }
}

const hcPathOf = (id: string): string => `hc-${id}`;

export class TunnelService {
  readonly tokenTtlSeconds: number;
  readonly idleTtlMs: number;
  private readonly now: () => number;
  private readonly randomId: () => string;

  constructor(private readonly o: TunnelServiceOptions) {
    this.tokenTtlSeconds = o.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    this.idleTtlMs = o.idleTtlMs ?? Math.max(DEFAULT_IDLE_TTL_MS, 2 * this.tokenTtlSeconds * 1000);
    if (!Number.isInteger(this.tokenTtlSeconds) || this.tokenTtlSeconds < 5 || this.tokenTtlSeconds > 7 * 86400) {
      throw new TypeError(`listener token TTL ${this.tokenTtlSeconds}s is out of range: use 5 to 604800 seconds`);
    }
    if (!(this.idleTtlMs >= 2 * this.tokenTtlSeconds * 1000)) {
      throw new TypeError(`tunnel idle TTL (${this.idleTtlMs} ms) must be at least twice the listener token TTL (${this.tokenTtlSeconds} s)`);
    }
    this.now = o.now ?? Date.now;
    this.randomId = o.randomId ?? randomTunnelId;
  }

  /** Creates a tunnel (or, for the owner's reserved name, takes it back from a stale session). */
  async create(keyId: string, input: CreateInput): Promise<IssuedTunnel> {
    const now = this.now();
    const base = { keyId, sessionId: randomUUID(), localPort: input.localPort, createdAt: now, lastSeenAt: now, expiresAt: now + this.idleTtlMs, ...(input.policy ? { policy: input.policy } : {}), ...(input.tcp ? { tcp: input.tcp } : {}) };
    const name = input.subdomain === undefined ? undefined : validateSubdomain(input.subdomain);
    await this.checkQuota(keyId, name);
    if (name !== undefined) {
      if ((await this.o.registry.claimName(name, keyId)) === "taken") {
        throw new ApiError(409, "subdomain_taken", `subdomain "${name}" is reserved by another API key; pick another name.`);
      }
      const rec: TunnelRecord = { ...base, id: name, hcPath: hcPathOf(name), reserved: true };
      if (await this.o.registry.create(rec)) return this.provisionNew(rec);
      return this.reclaim(keyId, name, base.sessionId, input);
    }
    for (let attempt = 0; attempt < 16; attempt++) {
      const id = this.randomId();
      const rec: TunnelRecord = { ...base, id, hcPath: hcPathOf(id), reserved: false };
      if (await this.o.registry.create(rec)) return this.provisionNew(rec);
    }
    throw new ApiError(500, "internal", "Could not allocate a tunnel id; try again.", { cause: new Error("16 id collisions in a row") });
  }

  /** 429 when `keyId` already holds its quota of tunnels (taking back its own reserved name is not a new one). */
  private async checkQuota(keyId: string, name: string | undefined): Promise<void> {
    const max = this.o.maxTunnelsPerKey ?? 0;
    if (max <= 0) return;
    const held = (await this.o.registry.list({ keyId })).filter((r) => r.id !== name).length;
    if (held >= max) {
      throw new ApiError(429, "tunnel_quota", `This API key already holds ${held} tunnel(s), its limit (AZHEXGATE_MAX_TUNNELS_PER_KEY=${max}); stop or delete one (azhexgate tunnels delete) and try again.`);
    }
  }

  /** A fresh listener token for the agent session `sessionId`; renews the tunnel's idle deadline. */
  async renewToken(keyId: string, id: string, opts: { sessionId: string; rejected?: boolean }): Promise<{ token: string; tokenExpiresAt: number; tunnel: TunnelRecord }> {
    const rec = await this.get(keyId, id);
    if (rec.sessionId !== opts.sessionId) {
      throw new ApiError(409, "session_superseded", "This tunnel was taken over by a newer session of your API key; stop this agent or create the tunnel again.");
    }
    if (opts.rejected) {
      this.o.issuer.invalidate(rec.hcPath);
      await this.relay("ensure", () => this.o.provisioner.ensure(rec.hcPath));
    }
    const issued = await this.issue(rec.hcPath);
    const now = this.now();
    const tunnel = (await this.o.registry.update(id, { lastSeenAt: now, expiresAt: now + this.idleTtlMs })) ?? rec;
    return { ...issued, tunnel };
  }

  /**
   * A short-lived Send-only token for a TCP tunnel's hybrid connection (`azhexgate connect`):
   * for the owner, the keys / users the owner allowed (`azhexgate tcp --allow`), and admins.
   * 404 for an unknown name; 403 for a tunnel the caller may not use; 409 for an HTTP tunnel.
   */
  async connectToken(keyId: string, id: string, admin = false): Promise<{ token: string; tokenExpiresAt: number; tunnel: TunnelRecord; ttlSeconds: number }> {
    const rec = await this.o.registry.get(id);
    if (!rec) throw notFound();
    const allowed = admin || rec.keyId === keyId || (rec.tcp?.allow ?? []).includes(keyId);
    if (!allowed) {
      throw new ApiError(403, "connect_forbidden", `You may not connect to tunnel "${id}": ask its owner to run azhexgate tcp with --allow ${keyId} (your key id or user id).`);
    }
    if (!rec.tcp) throw new ApiError(409, "not_tcp_tunnel", `Tunnel "${id}" is an HTTP tunnel; open its public URL instead of azhexgate connect.`);
    const issueSend = this.o.issuer.issueSend;
    if (!issueSend) throw new ApiError(501, "connect_unavailable", "This gateway's relay binding cannot sign Send tokens, so azhexgate connect is not available here.");
    // Short-lived: a quarter of the listener TTL, at most 15 minutes; `connect` renews before expiry.
    const ttlSeconds = Math.max(5, Math.min(900, Math.floor(this.tokenTtlSeconds / 4)));
    const { token, expiresAt } = await this.relay("issue", () => issueSend.call(this.o.issuer, rec.hcPath, ttlSeconds));
    return { token, tokenExpiresAt: expiresAt, tunnel: rec, ttlSeconds };
  }

  /** The caller's tunnel (any tunnel for an admin); 404 for an unknown id and for another owner's tunnel alike. */
  async get(keyId: string, id: string, admin = false): Promise<TunnelRecord> {
    const rec = await this.o.registry.get(id);
    if (!rec || (rec.keyId !== keyId && !admin)) throw notFound();
    return rec;
  }

  /** The caller's tunnels, or (`all`, admins only — the caller checks) every tunnel. */
  list(keyId: string, all = false): Promise<TunnelRecord[]> {
    return this.o.registry.list(all ? undefined : { keyId });
  }

  /** Deletes the caller's tunnel (any tunnel for an admin) and its HC; a reserved name stays owned by its owner. */
  async delete(keyId: string, id: string, admin = false): Promise<void> {
    const rec = await this.get(keyId, id, admin);
    await this.relay("remove", () => this.o.provisioner.remove(rec.hcPath));
    await this.o.registry.delete(id);
    this.o.log?.info("tunnel deleted", { tunnel_id: id, key_id: keyId, owner: rec.keyId === keyId ? undefined : rec.keyId });
  }

  /**
   * Frees the caller's reserved name (any name for an admin) so any key may take it. 404 for a name
   * that is not reserved or is another key's; 409 while a tunnel still uses it (delete that first).
   */
  async releaseName(keyId: string, name: string, admin = false): Promise<void> {
    const owner = await this.o.registry.nameOwner(name);
    if (owner === undefined || (owner !== keyId && !admin)) throw new ApiError(404, "not_found", `You have no reserved name "${name}".`);
    if (await this.o.registry.get(name)) {
      throw new ApiError(409, "name_in_use", `The tunnel ${name} still uses this name; delete the tunnel first, then release the name.`);
    }
    if (!(await this.o.registry.releaseName(name, owner))) throw new ApiError(404, "not_found", `You have no reserved name "${name}".`);
    this.o.log?.info("name released", { name, key_id: keyId, owner: owner === keyId ? undefined : owner });
  }

  /** Removes tunnels idle past their deadline (and their HCs); returns how many went. */
  async sweep(now = this.now()): Promise<number> {
    let removed = 0;
    for (const stale of await this.o.registry.expired(now)) {
      const rec = await this.o.registry.get(stale.id); // renewed meanwhile?
      if (!rec || rec.expiresAt > now) continue;
      try {
        await this.o.provisioner.remove(rec.hcPath);
      } catch (e) {
        this.o.log?.warn("sweep remove failed", { tunnel_id: rec.id, error: e as Error });
        continue; // keep the record: the next sweep retries the HC
      }
      await this.o.registry.delete(rec.id);
      removed++;
      this.o.log?.info("tunnel expired", { tunnel_id: rec.id, key_id: rec.keyId });
    }
    return removed;
  }

  private async provisionNew(rec: TunnelRecord): Promise<IssuedTunnel> {
    try {
      await this.relay("ensure", () => this.o.provisioner.ensure(rec.hcPath));
      const issued = await this.issue(rec.hcPath);
      this.o.log?.info("tunnel created", { tunnel_id: rec.id, key_id: rec.keyId, reserved: rec.reserved });
      return { tunnel: rec, ...issued };
    } catch (e) {
      await this.o.registry.delete(rec.id).catch(() => false);
      throw e;
    }
  }

  /** The owner asks for its name again: new session, stale listeners cut, old tokens dead. */
  private async reclaim(keyId: string, name: string, sessionId: string, input: CreateInput): Promise<IssuedTunnel> {
    const { localPort, policy, tcp } = input;
    const old = await this.o.registry.get(name);
    if (!old || old.keyId !== keyId) {
      throw new ApiError(409, "subdomain_taken", `subdomain "${name}" is in use; try again in a moment.`, RETRY_SOON);
    }
    const now = this.now();
    const rec = await this.o.registry.update(name, { sessionId, localPort, policy, tcp, lastSeenAt: now, expiresAt: now + this.idleTtlMs });
    if (!rec) throw new ApiError(409, "subdomain_taken", `subdomain "${name}" changed while being reclaimed; try again.`, RETRY_SOON);
    // Remove + ensure: closes the stale listeners (1001) and rotates the Listen rule's key.
    await this.relay("remove", () => this.o.provisioner.remove(rec.hcPath));
    this.o.issuer.invalidate(rec.hcPath);
    await this.relay("ensure", () => this.o.provisioner.ensure(rec.hcPath));
    const issued = await this.issue(rec.hcPath);
    this.o.log?.info("tunnel reclaimed", { tunnel_id: name, key_id: keyId });
    return { tunnel: rec, ...issued };
  }

  private async issue(hcPath: string): Promise<{ token: string; tokenExpiresAt: number }> {
    const { token, expiresAt } = await this.relay("issue", () => this.o.issuer.issue(hcPath, this.tokenTtlSeconds));
    return { token, tokenExpiresAt: expiresAt };
  }

  /** Runs a relay call; a failure becomes 502 `relay_unavailable` (logged by the boundary with its cause). */
  private async relay<T>(what: "ensure" | "remove" | "issue", fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ApiError) throw e;
      const advice =
        what === "issue"
          ? "the gateway could not sign a listener token; check its access to the relay namespace keys"
          : "the gateway could not reach the relay to manage the hybrid connection; check the relay namespace and the gateway's role assignment";
      throw new ApiError(502, "relay_unavailable", `Relay unavailable: ${advice}, then retry.`, { cause: e });
    }
  }
}

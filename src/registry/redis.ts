/**
 * The shared tunnel registry on Redis (Bun's built-in `RedisClient`), so that several gateway
 * instances see one view. Layout under `prefix` (default "azhexgate:"):
 *
 *   {p}tunnel:{id}     hash of the record's fields (localPort, policy absent when unset; policy as JSON)
 *   {p}expiry          sorted set: id scored by expiresAt   → expired(now), list()
 *   {p}owner:{keyId}   set of ids                           → list({ keyId })
 *   {p}name:{name}     string: owner keyId (SET NX)         → claimName / nameOwner / releaseName
 *
 * Every write that touches several keys is one Lua script, hence atomic. Scripts build owner
 * keys from the prefix at run time, so this needs a non-cluster Redis (or a hash-tag prefix).
 */
import { RedisClient } from "bun";
import type { TunnelRecord, TunnelRegistry } from "./types.ts";

export interface RedisRegistryOptions {
  /** Key prefix (default "azhexgate:"). */
  prefix?: string;
  /** Bound on establishing the connection, in ms (default 10 000). */
  connectTimeoutMs?: number;
}

type Patch = Partial<Omit<TunnelRecord, "id">>;

const PATCHABLE = new Set(["keyId", "hcPath", "reserved", "sessionId", "localPort", "createdAt", "lastSeenAt", "expiresAt", "policy", "tcp"]);

const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
return 1`;

// ARGV: prefix, id, n, n field/value pairs, then fields to delete.
const UPDATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local p, id, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local before = redis.call('HGET', KEYS[1], 'keyId')
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n)) end
for i = 4 + 2 * n, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
local after = redis.call('HGET', KEYS[1], 'keyId')
if after ~= before then
  redis.call('SREM', p .. 'owner:' .. before, id)
  redis.call('SADD', p .. 'owner:' .. after, id)
end
redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[1], 'expiresAt'), id)
return redis.call('HGETALL', KEYS[1])`;

const DELETE = `
local owner = redis.call('HGET', KEYS[1], 'keyId')
if not owner then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SREM', ARGV[1] .. 'owner:' .. owner, ARGV[2])
return 1`;

const CLAIM = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return ARGV[1] end
return redis.call('GET', KEYS[1])`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** The URL with any password replaced by "***" (safe for logs and error messages). */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparsable Redis URL>";
  }
}

function fields(rec: TunnelRecord): string[] {
  const out = [
    "id", rec.id,
    "keyId", rec.keyId,
    "hcPath", rec.hcPath,
    "reserved", rec.reserved ? "1" : "0",
    "sessionId", rec.sessionId,
    "createdAt", String(rec.createdAt),
    "lastSeenAt", String(rec.lastSeenAt),
    "expiresAt", String(rec.expiresAt),
  ];
  if (rec.localPort !== undefined) out.push("localPort", String(rec.localPort));
  if (rec.policy !== undefined) out.push("policy", JSON.stringify(rec.policy));
  if (rec.tcp !== undefined) out.push("tcp", JSON.stringify(rec.tcp));
  return out;
}

function fromHash(h: Record<string, string>, key: string): TunnelRecord {
  const str = (f: string): string => {
    const v = h[f];
    if (v === undefined) throw new Error(`corrupt tunnel record at Redis key ${key}: no field "${f}"`);
    return v;
  };
  const num = (f: string): number => {
    const n = Number(str(f));
    if (!Number.isFinite(n)) throw new Error(`corrupt tunnel record at Redis key ${key}: "${f}" is not a number`);
    return n;
  };
  const rec: TunnelRecord = {
    id: str("id"),
    keyId: str("keyId"),
    hcPath: str("hcPath"),
    reserved: str("reserved") === "1",
    sessionId: str("sessionId"),
    createdAt: num("createdAt"),
    lastSeenAt: num("lastSeenAt"),
    expiresAt: num("expiresAt"),
  };
  if (h.localPort !== undefined) rec.localPort = num("localPort");
  if (h.policy !== undefined) rec.policy = JSON.parse(h.policy) as TunnelRecord["policy"];
  if (h.tcp !== undefined) rec.tcp = JSON.parse(h.tcp) as TunnelRecord["tcp"];
  return rec;
}

function pairsToHash(flat: unknown): Record<string, string> {
  if (!Array.isArray(flat)) return (flat ?? {}) as Record<string, string>; // RESP3 map
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[String(flat[i])] = String(flat[i + 1]);
  return h;
}

const byCreation = (a: TunnelRecord, b: TunnelRecord) =>
  a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

async function connect(url: string, autoReconnect: boolean, timeoutMs: number): Promise<RedisClient> {
  const client = new RedisClient(url, { connectionTimeout: timeoutMs, autoReconnect });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      client.connect().then(() => client.send("PING", [])),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return client;
  } catch (err) {
    client.close();
    const e = err as { message?: string; code?: string };
    const why = `${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ""}`;
    throw new Error(
      `cannot connect to Redis at ${redactRedisUrl(url)} (${why}); check that the server is running and reachable and the credentials are right`,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
  }
}

/** Connects to `url` (`redis://` or `rediss://host:port[/db]`) and returns the registry on it. */
export async function openRedisRegistry(url: string, opts: RedisRegistryOptions = {}): Promise<TunnelRegistry> {
  const prefix = opts.prefix ?? "azhexgate:";
  const timeoutMs = opts.connectTimeoutMs ?? 10_000;
  // A probe without auto-reconnect fails fast (refused, bad auth) instead of retrying for
  // tens of seconds; the long-lived client then reconnects on its own after a blip.
  (await connect(url, false, timeoutMs)).close();
  const client = await connect(url, true, timeoutMs);

  const tunnelKey = (id: string) => `${prefix}tunnel:${id}`;
  const expiryKey = `${prefix}expiry`;
  const ownerKey = (keyId: string) => `${prefix}owner:${keyId}`;
  const nameKey = (name: string) => `${prefix}name:${name}`;

  const shas = new Map<string, string>();
  const run = async (script: string, keys: string[], args: string[]): Promise<unknown> => {
    let sha = shas.get(script);
    if (!sha) shas.set(script, (sha = new Bun.CryptoHasher("sha1").update(script).digest("hex")));
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await client.send("EVALSHA", [sha, ...tail]);
    } catch (err) {
      if (redisErrorKind(err) !== "NOSCRIPT") throw err;
      return await client.send("EVAL", [script, ...tail]);
    }
  };

  const fetchAll = async (ids: string[]): Promise<TunnelRecord[]> => {
    const hashes = await Promise.all(ids.map((id) => client.hgetall(tunnelKey(id))));
    const out: TunnelRecord[] = [];
    hashes.forEach((h, i) => {
      // A tunnel deleted between the index read and this one is simply gone.
      if (h && Object.keys(h).length > 0) out.push(fromHash(h, tunnelKey(ids[i]!)));
    });
    return out.sort(byCreation);
  };

  let closed = false;
  return {
    async create(rec) {
      const r = await run(CREATE, [tunnelKey(rec.id), expiryKey, ownerKey(rec.keyId)], [
        String(rec.expiresAt),
        rec.id,
        ...fields(rec),
      ]);
      return Number(r) === 1;
    },
    async get(id) {
      const h = await client.hgetall(tunnelKey(id));
      return h && Object.keys(h).length > 0 ? fromHash(h, tunnelKey(id)) : undefined;
    },
    async update(id, patch: Patch) {
      const set: string[] = [];
      const del: string[] = [];
      for (const [k, v] of Object.entries(patch)) {
        if (!PATCHABLE.has(k)) continue; // the id, and unknown keys, are never written
        if (v === undefined) {
          if (k === "localPort" || k === "policy" || k === "tcp") del.push(k);
        } else set.push(k, k === "reserved" ? (v ? "1" : "0") : k === "policy" || k === "tcp" ? JSON.stringify(v) : String(v));
      }
      const r = await run(UPDATE, [tunnelKey(id), expiryKey], [prefix, id, String(set.length / 2), ...set, ...del]);
      return r === null || r === undefined || r === false ? undefined : fromHash(pairsToHash(r), tunnelKey(id));
    },
    async delete(id) {
      return Number(await run(DELETE, [tunnelKey(id), expiryKey], [prefix, id])) === 1;
    },
    async list(filter) {
      if (filter?.keyId !== undefined) {
        const keyId = filter.keyId;
        const recs = await fetchAll(await client.smembers(ownerKey(keyId)));
        return recs.filter((r) => r.keyId === keyId);
      }
      return fetchAll((await client.send("ZRANGE", [expiryKey, "0", "-1"])) as string[]);
    },
    async expired(now) {
      const ids = (await client.send("ZRANGEBYSCORE", [expiryKey, "-inf", String(now)])) as string[];
      return (await fetchAll(ids)).filter((r) => r.expiresAt <= now);
    },
    async claimName(name, keyId) {
      return (await run(CLAIM, [nameKey(name)], [keyId])) === keyId ? "ok" : "taken";
    },
    async nameOwner(name) {
      return (await client.get(nameKey(name))) ?? undefined;
    },
    async releaseName(name, keyId) {
      return Number(await run(RELEASE, [nameKey(name)], [keyId])) > 0;
    },
    async close() {
      if (closed) return;
      closed = true;
      client.close();
    },
  };
}

/**
 * The kind of a Redis error reply: its first word, which the protocol defines as the error's
 * kind ("the first word after the - … represents the kind of error returned", RESP spec,
 * https://redis.io/docs/latest/develop/reference/protocol-spec/#simple-errors). Bun's client
 * reports every server error as code ERR_REDIS_SERVER_ERROR with the reply as its message.
 */
function redisErrorKind(err: unknown): string | undefined {
  const e = err as { code?: unknown; message?: unknown };
  if (e?.code !== "ERR_REDIS_SERVER_ERROR" || typeof e.message !== "string") return undefined;
  return e.message.split(" ", 1)[0];
}

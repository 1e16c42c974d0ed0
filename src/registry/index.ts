/**
 * `openRegistry(spec)`: one string picks the store.
 *
 *   :memory:  | sqlite::memory:             → SQLite in memory (tests, throwaway gateways)
 *   ./data/registry.db | sqlite:/path/x.db  → SQLite file (parent directories created)
 *   redis://host:port[/db] | rediss://…     → Redis (shared by several gateways)
 */
import { openRedisRegistry, redactRedisUrl, type RedisRegistryOptions } from "./redis.ts";
import { openSqliteRegistry } from "./sqlite.ts";
import type { TunnelRegistry } from "./types.ts";

export type { TunnelRecord, TunnelRegistry } from "./types.ts";
export { openRedisRegistry, redactRedisUrl, type RedisRegistryOptions } from "./redis.ts";
export { openSqliteRegistry } from "./sqlite.ts";

export type RegistrySpec = { kind: "sqlite"; path: string } | { kind: "redis"; url: string };

const HELP =
  'use a file path (e.g. "./data/registry.db" or "sqlite:/var/lib/azhexgate/registry.db"), ":memory:", or a Redis URL ("redis://host:6379" or "rediss://…")';

/** Parses a registry spec; throws a TypeError that says what to write instead. */
export function parseRegistrySpec(spec: string): RegistrySpec {
  const s = spec.trim();
  if (s === "") throw new TypeError(`The registry setting is empty; ${HELP}.`);
  if (s === ":memory:") return { kind: "sqlite", path: ":memory:" };
  if (/^rediss?:\/\//i.test(s)) {
    try {
      new URL(s);
    } catch {
      throw new TypeError(`The registry Redis URL ${redactRedisUrl(s)} is not a valid URL; ${HELP}.`);
    }
    return { kind: "redis", url: s };
  }
  if (/^sqlite:/i.test(s)) {
    let path = s.slice("sqlite:".length);
    if (path.startsWith("//")) path = path.slice(2); // sqlite:///abs/path
    if (path === "") throw new TypeError(`The registry spec "${s}" names no file; ${HELP}.`);
    return { kind: "sqlite", path };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(s);
  // A one-letter "scheme" is a Windows drive ("C:\data\registry.db").
  if (scheme && scheme[1]!.length > 1) {
    const shown = /^redis/i.test(scheme[1]!) ? redactRedisUrl(s) : `${scheme[1]}:…`;
    throw new TypeError(`Unsupported registry "${shown}" (scheme "${scheme[1]}:"); ${HELP}.`);
  }
  return { kind: "sqlite", path: s };
}

/** Opens the registry a spec names (see the module comment). */
export async function openRegistry(spec: string, opts: RedisRegistryOptions = {}): Promise<TunnelRegistry> {
  const parsed = parseRegistrySpec(spec);
  return parsed.kind === "redis" ? openRedisRegistry(parsed.url, opts) : openSqliteRegistry(parsed.path);
}

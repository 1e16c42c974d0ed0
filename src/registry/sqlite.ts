/**
 * The embedded tunnel registry on `bun:sqlite`: one file (or `:memory:`), WAL mode, prepared
 * statements. Survives gateway restarts; several processes may share the file (busy timeout).
 * Every write is one statement or one IMMEDIATE transaction, so `create` and `claimName` are
 * atomic across connections.
 */
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { TcpSettings, TunnelPolicy, TunnelRecord, TunnelRegistry } from "./types.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tunnels (
  id           TEXT PRIMARY KEY,
  key_id       TEXT NOT NULL,
  hc_path      TEXT NOT NULL,
  reserved     INTEGER NOT NULL,
  session_id   TEXT NOT NULL,
  local_port   INTEGER,
  created_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  policy       TEXT,
  tcp          TEXT
);
CREATE INDEX IF NOT EXISTS tunnels_key_id ON tunnels (key_id);
CREATE INDEX IF NOT EXISTS tunnels_expires_at ON tunnels (expires_at);
CREATE TABLE IF NOT EXISTS reserved_names (
  name       TEXT PRIMARY KEY,
  key_id     TEXT NOT NULL,
  claimed_at INTEGER NOT NULL
);
`;

interface Row {
  id: string;
  key_id: string;
  hc_path: string;
  reserved: number;
  session_id: string;
  local_port: number | null;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  policy: string | null;
  tcp: string | null;
}

const COLUMNS = "id, key_id, hc_path, reserved, session_id, local_port, created_at, last_seen_at, expires_at, policy, tcp";
const ORDER = "ORDER BY created_at, id";

function toRecord(row: Row): TunnelRecord {
  const rec: TunnelRecord = {
    id: row.id,
    keyId: row.key_id,
    hcPath: row.hc_path,
    reserved: row.reserved !== 0,
    sessionId: row.session_id,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    expiresAt: row.expires_at,
  };
  if (row.local_port !== null) rec.localPort = row.local_port;
  if (row.policy) rec.policy = JSON.parse(row.policy) as TunnelPolicy;
  if (row.tcp) rec.tcp = JSON.parse(row.tcp) as TcpSettings;
  return rec;
}

function toParams(rec: TunnelRecord): Row {
  return {
    id: rec.id,
    key_id: rec.keyId,
    hc_path: rec.hcPath,
    reserved: rec.reserved ? 1 : 0,
    session_id: rec.sessionId,
    local_port: rec.localPort ?? null,
    created_at: rec.createdAt,
    last_seen_at: rec.lastSeenAt,
    expires_at: rec.expiresAt,
    policy: rec.policy ? JSON.stringify(rec.policy) : null,
    tcp: rec.tcp ? JSON.stringify(rec.tcp) : null,
  };
}

/**
 * `{ ...rec, ...patch }` where an `undefined` value keeps the old field, except `localPort`:
 * a patch that names `localPort` or `policy` with `undefined` clears it. The id never changes.
 */
export function applyPatch(rec: TunnelRecord, patch: Partial<Omit<TunnelRecord, "id">>): TunnelRecord {
  const next: TunnelRecord = { ...rec };
  for (const [k, v] of Object.entries(patch) as [keyof TunnelRecord, unknown][]) {
    if (k === "id" || !(k in rec || k === "localPort" || k === "policy" || k === "tcp")) continue; // unknown keys are ignored
    if (v !== undefined) (next as unknown as Record<string, unknown>)[k] = v;
    else if (k === "localPort" || k === "policy" || k === "tcp") delete next[k];
  }
  return next;
}

/** Opens (creating if needed, with its parent directories) the registry at `path`, or `":memory:"`. */
export function openSqliteRegistry(path: string): TunnelRegistry {
  if (path !== ":memory:" && path !== "") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { create: true, strict: true });
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run(SCHEMA);
  // Registries created before tunnel policies (issue 14) get the column.
  if (!db.query<{ name: string }, []>("PRAGMA table_info(tunnels)").all().some((c) => c.name === "policy")) db.run("ALTER TABLE tunnels ADD COLUMN policy TEXT");
  // … and before TCP tunnels (issue 16).
  if (!db.query<{ name: string }, []>("PRAGMA table_info(tunnels)").all().some((c) => c.name === "tcp")) db.run("ALTER TABLE tunnels ADD COLUMN tcp TEXT");

  const p = (row: Row) => row as unknown as Record<string, string | number | null>;
  const insert = db.query<unknown, [Record<string, string | number | null>]>(
    `INSERT INTO tunnels (${COLUMNS}) VALUES ($id, $key_id, $hc_path, $reserved, $session_id, $local_port,
       $created_at, $last_seen_at, $expires_at, $policy, $tcp) ON CONFLICT (id) DO NOTHING`,
  );
  const replace = db.query<unknown, [Record<string, string | number | null>]>(
    `UPDATE tunnels SET key_id = $key_id, hc_path = $hc_path, reserved = $reserved, session_id = $session_id,
       local_port = $local_port, created_at = $created_at, last_seen_at = $last_seen_at, expires_at = $expires_at,
       policy = $policy, tcp = $tcp
     WHERE id = $id`,
  );
  const selectOne = db.query<Row, [string]>(`SELECT ${COLUMNS} FROM tunnels WHERE id = ?1`);
  const selectAll = db.query<Row, []>(`SELECT ${COLUMNS} FROM tunnels ${ORDER}`);
  const selectByKey = db.query<Row, [string]>(`SELECT ${COLUMNS} FROM tunnels WHERE key_id = ?1 ${ORDER}`);
  const selectExpired = db.query<Row, [number]>(`SELECT ${COLUMNS} FROM tunnels WHERE expires_at <= ?1 ${ORDER}`);
  const remove = db.query<unknown, [string]>("DELETE FROM tunnels WHERE id = ?1");
  const insertName = db.query<unknown, [string, string, number]>(
    "INSERT OR IGNORE INTO reserved_names (name, key_id, claimed_at) VALUES (?1, ?2, ?3)",
  );
  const selectName = db.query<{ key_id: string }, [string]>("SELECT key_id FROM reserved_names WHERE name = ?1");
  const deleteName = db.query<unknown, [string, string]>("DELETE FROM reserved_names WHERE name = ?1 AND key_id = ?2");

  const updateTx = db.transaction((id: string, patch: Partial<Omit<TunnelRecord, "id">>) => {
    const row = selectOne.get(id);
    if (!row) return undefined;
    const next = applyPatch(toRecord(row), patch);
    replace.run(p(toParams(next)));
    return next;
  });
  const claimTx = db.transaction((name: string, keyId: string) => {
    insertName.run(name, keyId, Date.now());
    return selectName.get(name)?.key_id;
  });

  let closed = false;
  return {
    async create(rec) {
      return insert.run(p(toParams(rec))).changes === 1;
    },
    async get(id) {
      const row = selectOne.get(id);
      return row ? toRecord(row) : undefined;
    },
    async update(id, patch) {
      return updateTx.immediate(id, patch);
    },
    async delete(id) {
      return remove.run(id).changes > 0;
    },
    async list(filter) {
      const rows = filter?.keyId !== undefined ? selectByKey.all(filter.keyId) : selectAll.all();
      return rows.map(toRecord);
    },
    async expired(now) {
      return selectExpired.all(now).map(toRecord);
    },
    async claimName(name, keyId) {
      return claimTx.immediate(name, keyId) === keyId ? "ok" : "taken";
    },
    async nameOwner(name) {
      return selectName.get(name)?.key_id;
    },
    async releaseName(name, keyId) {
      return deleteName.run(name, keyId).changes > 0;
    },
    async close() {
      if (closed) return;
      closed = true;
      db.close(false);
    },
  };
}

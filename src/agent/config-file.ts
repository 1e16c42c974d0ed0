/**
 * The `start` config file (azhexgate.json / azhexgate.toml): read, parsed and checked against one
 * schema. Unknown keys and wrong types are errors naming the file, the key and the expected shape
 * (with the closest known key for a typo). `START_FILE_KEYS` is the schema; docs/configuration.md
 * documents every key (a test checks).
 */

export class ConfigFileError extends Error {
  override readonly name = "ConfigFileError";
}

type Kind = "string" | "url" | "boolean" | "port" | "seconds" | "subdomain" | "count" | { oneOf: readonly string[] };

interface KeyDef {
  kind: Kind;
  doc: string;
}

const HOST_HEADER = { oneOf: ["rewrite", "preserve"] } as const;
const LOG_LEVEL = { oneOf: ["silent", "error", "warn", "info", "debug"] } as const;

/** Keys of one `[[tunnels]]` entry. */
export const TUNNEL_KEYS: Record<string, KeyDef> = {
  port: { kind: "port", doc: "the local app's port (required)" },
  subdomain: { kind: "subdomain", doc: "reserved name to claim, e.g. my-app" },
  host_header: { kind: HOST_HEADER, doc: "Host the app sees: rewrite (localhost:PORT) or preserve (the public host)" },
  local_host: { kind: "string", doc: "host of the local app (default localhost)" },
  local_https: { kind: "boolean", doc: "the local app speaks HTTPS" },
};

/** Top-level keys: settings for every tunnel, plus `port` / `subdomain` as a one-tunnel shorthand. */
export const START_FILE_KEYS: Record<string, KeyDef> = {
  api_url: { kind: "url", doc: "management API of a deployed gateway (AZHEXGATE_API_URL)" },
  api_key: { kind: "string", doc: "API key (AZHEXGATE_API_KEY; prefer the environment)" },
  port: { kind: "port", doc: "one tunnel's local port (shorthand for a single [[tunnels]] entry)" },
  subdomain: { kind: "subdomain", doc: "that tunnel's reserved name" },
  host_header: TUNNEL_KEYS.host_header!,
  local_host: TUNNEL_KEYS.local_host!,
  local_https: TUNNEL_KEYS.local_https!,
  tunnels: { kind: "string", doc: "several tunnels: a list of tables with the keys port, subdomain, host_header, local_host, local_https" },
  log_level: { kind: LOG_LEVEL, doc: "silent, error, warn, info or debug (default warn)" },
  grace: { kind: "seconds", doc: "seconds in-flight requests may finish after Ctrl+C (default 10)" },
  json: { kind: "boolean", doc: "JSON events on stdout" },
  qr: { kind: "boolean", doc: "print the public URL as a QR code" },
  open: { kind: "boolean", doc: "open the public URL in the browser once online" },
  exit_on_fail: { kind: "boolean", doc: "exit on permanent relay failures instead of retrying" },
  recreate: { kind: "boolean", doc: "re-create a tunnel deleted on the gateway instead of exiting" },
  inspect: { kind: "boolean", doc: "capture requests for the inspector page (default true)" },
  inspect_port: { kind: "port", doc: "the inspector's port on 127.0.0.1 (default 4040, next free if taken)" },
  inspect_entries: { kind: "count", doc: "requests the inspector keeps (default 500)" },
  inspect_body_limit: { kind: "count", doc: "bytes of each body captured (default 65536)" },
};

export interface TunnelEntry {
  port: number;
  subdomain?: string;
  host_header?: "rewrite" | "preserve";
  local_host?: string;
  local_https?: boolean;
}

export interface StartFile {
  file?: string;
  api_url?: string;
  api_key?: string;
  host_header?: "rewrite" | "preserve";
  local_host?: string;
  local_https?: boolean;
  tunnels?: TunnelEntry[];
  log_level?: string;
  grace?: number;
  json?: boolean;
  qr?: boolean;
  open?: boolean;
  exit_on_fail?: boolean;
  recreate?: boolean;
  inspect?: boolean;
  inspect_port?: number;
  inspect_entries?: number;
  inspect_body_limit?: number;
}

const SUBDOMAIN = /^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$/;

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The known key closest to `key` (a typo, another case, `-` for `_`), if any is close. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const norm = key.toLowerCase().replace(/-/g, "_");
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(norm, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

function describe(kind: Kind): string {
  if (typeof kind === "object") return `one of ${kind.oneOf.map((v) => `"${v}"`).join(", ")}`;
  return {
    string: "a string",
    url: 'an http(s) URL string, e.g. "https://azhexgate.example.com"',
    boolean: "true or false",
    port: "a whole number from 1 to 65535",
    seconds: "a number of seconds, 0 or more",
    subdomain: 'a name of 3-40 lowercase letters, digits or hyphens, e.g. "my-app"',
    count: "a whole number, 0 or more",
  }[kind];
}

function valid(kind: Kind, v: unknown): boolean {
  if (typeof kind === "object") return typeof v === "string" && kind.oneOf.includes(v);
  switch (kind) {
    case "string":
      return typeof v === "string";
    case "url":
      try {
        return typeof v === "string" && /^https?:$/.test(new URL(v).protocol);
      } catch {
        return false;
      }
    case "boolean":
      return typeof v === "boolean";
    case "port":
      return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;
    case "seconds":
      return typeof v === "number" && Number.isFinite(v) && v >= 0;
    case "subdomain":
      return typeof v === "string" && SUBDOMAIN.test(v);
    case "count":
      return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Checks one table against `keys`; `where` is "" at the top, "tunnels[0]." inside. */
function checkTable(file: string, where: string, table: Record<string, unknown>, keys: Record<string, KeyDef>): void {
  const known = Object.keys(keys);
  for (const [k, v] of Object.entries(table)) {
    if (where === "" && k === "$schema") continue;
    const def = keys[k];
    if (!def) {
      const near = closestKey(k, known);
      throw new ConfigFileError(
        `config file ${file}: unknown key "${where}${k}"${near ? ` (did you mean "${where}${near}"?)` : ""}; ${where ? "a tunnel takes" : "known keys are"} ${known.join(", ")}`,
      );
    }
    if (k === "tunnels" && where === "") continue;
    if (!valid(def.kind, v)) throw new ConfigFileError(`config file ${file}: "${where}${k}" must be ${describe(def.kind)} (got ${show(v)})`);
  }
}

/** Validates parsed file content; returns it typed. Throws a ConfigFileError naming the file and key. */
export function validateStartFile(file: string, raw: unknown): StartFile {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigFileError(`config file ${file}: must be ${file.endsWith(".toml") ? "a TOML document" : "a JSON object"} of settings`);
  const t = raw as Record<string, unknown>;
  checkTable(file, "", t, START_FILE_KEYS);
  let tunnels: TunnelEntry[] | undefined;
  if (t.tunnels !== undefined) {
    if (!Array.isArray(t.tunnels)) throw new ConfigFileError(`config file ${file}: "tunnels" must be a list of tables (TOML: [[tunnels]] sections; JSON: [{ "port": 3000 }])`);
    if (t.port !== undefined || t.subdomain !== undefined)
      throw new ConfigFileError(`config file ${file}: give either a top-level "port" / "subdomain" (one tunnel) or "tunnels" (several), not both`);
    tunnels = t.tunnels.map((e, i) => {
      if (typeof e !== "object" || e === null || Array.isArray(e)) throw new ConfigFileError(`config file ${file}: "tunnels[${i}]" must be a table with at least a port, e.g. { "port": 3000 }`);
      checkTable(file, `tunnels[${i}].`, e as Record<string, unknown>, TUNNEL_KEYS);
      if ((e as TunnelEntry).port === undefined) throw new ConfigFileError(`config file ${file}: "tunnels[${i}].port" is required (${describe("port")})`);
      return e as TunnelEntry;
    });
  } else if (t.port !== undefined) {
    tunnels = [{ port: t.port as number, subdomain: t.subdomain as string | undefined }];
  } else if (t.subdomain !== undefined) {
    throw new ConfigFileError(`config file ${file}: "subdomain" needs a "port" (the local app's port)`);
  }
  const { port: _p, subdomain: _s, $schema: _x, ...rest } = t;
  return { ...(rest as StartFile), file, tunnels };
}

/** Reads `path` (or ./azhexgate.json, then ./azhexgate.toml, if present). */
export async function readStartFile(path: string | undefined, cwd: string): Promise<StartFile> {
  const candidates = path ? [path] : [`${cwd}/azhexgate.json`, `${cwd}/azhexgate.toml`];
  for (const file of candidates) {
    const f = Bun.file(file);
    if (!(await f.exists())) {
      if (path) throw new ConfigFileError(`config file ${file} does not exist`);
      continue;
    }
    const text = await f.text();
    let parsed: unknown;
    try {
      parsed = file.endsWith(".toml") ? Bun.TOML.parse(text) : JSON.parse(text);
    } catch (err) {
      throw new ConfigFileError(`config file ${file} is not valid ${file.endsWith(".toml") ? "TOML" : "JSON"}: ${(err as Error).message}`);
    }
    return validateStartFile(file, parsed);
  }
  return {};
}

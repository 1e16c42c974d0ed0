/**
 * The relay settings, read once from the environment at the edge and validated. Pure: a record in,
 * a frozen value (or a thrown `RelaySettingsError` naming the variable) out.
 *
 * No `AZHEXGATE_RELAY_NAMESPACE` → local mode (the relay emulator), with a one-sentence reason.
 * The SAS key sits in a private field behind a getter: it does not appear in JSON, spreading,
 * `toString`, `Bun.inspect` or any error message; read it with `settings.key`.
 */
import { type Cloud, CLOUD_SUFFIXES, cloudOf, type RelayEndpoint, resolveNamespace } from "../hc/address.ts";

/** Every environment variable `readRelaySettings` reads (infra declares exactly these). */
export const RELAY_SETTING_NAMES = Object.freeze([
  "AZHEXGATE_RELAY_NAMESPACE",
  "AZHEXGATE_RELAY_KEY_NAME",
  "AZHEXGATE_RELAY_KEY",
  "AZURE_SUBSCRIPTION_ID",
  "AZURE_RESOURCE_GROUP",
  "AZHEXGATE_BASE_DOMAIN",
  "AZHEXGATE_RELAY_CLOUD",
  "AZURE_CLIENT_ID",
  "AZHEXGATE_RELAY_KEY_REFRESH_SECONDS",
] as const);

export type RelaySettingName = (typeof RELAY_SETTING_NAMES)[number];

export const DEFAULT_BASE_DOMAIN = "azhexgate.com";
export const DEFAULT_KEY_REFRESH_SECONDS = 600;
const MIN_KEY_REFRESH_SECONDS = 30;
const MAX_KEY_REFRESH_SECONDS = 86_400;

export interface RelaySettings {
  readonly mode: "azure";
  /** What was configured (short name, FQDN or URL). */
  readonly namespace: string;
  /** The data-plane endpoint it resolves to. */
  readonly endpoint: RelayEndpoint;
  /** The namespace's resource name for ARM (short name, or the FQDN's first label); undefined for IP / emulator URLs. */
  readonly armNamespace: string | undefined;
  readonly cloud: Cloud;
  /** SAS rule name of the env key (namespace-level rule), when one is configured. */
  readonly keyName: string | undefined;
  /** The env SAS key (non-enumerable). */
  readonly key: string | undefined;
  readonly subscriptionId: string | undefined;
  readonly resourceGroup: string | undefined;
  /** User-assigned managed identity client id (`AZURE_CLIENT_ID`). */
  readonly managedIdentityClientId: string | undefined;
  /** How long keys read through ARM are used before they are read again. */
  readonly keyRefreshSeconds: number;
  readonly baseDomain: string;
}

export interface LocalRelaySettings {
  readonly mode: "local";
  /** One sentence for the startup log line. */
  readonly reason: string;
  readonly baseDomain: string;
}

export class RelaySettingsError extends Error {
  override readonly name = "RelaySettingsError";
  readonly code = "invalid_config";
  constructor(
    readonly variable: RelaySettingName,
    message: string,
  ) {
    super(message);
  }
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RESOURCE_GROUP = /^[-\w.()]{1,90}$/u;
const RULE_NAME = /^[A-Za-z0-9._-]{1,256}$/;
const NAMESPACE_NAME = /^[a-z][a-z0-9-]{4,48}[a-z0-9]$/i;
const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const DOMAIN = new RegExp(`^${LABEL}(?:\\.${LABEL})*(?::\\d{1,5})?$`, "i");
const CLOUDS = Object.keys(CLOUD_SUFFIXES) as Cloud[];

/** Reads the relay settings from `env` (empty values count as unset). Throws RelaySettingsError. */
export function readRelaySettings(env: Record<string, string | undefined>): RelaySettings | LocalRelaySettings {
  const get = (name: RelaySettingName): string | undefined => {
    const v = env[name]?.trim();
    return v ? v : undefined;
  };
  const fail = (name: RelaySettingName, message: string): never => {
    throw new RelaySettingsError(name, `${name} ${message}`);
  };

  const baseDomain = (get("AZHEXGATE_BASE_DOMAIN") ?? DEFAULT_BASE_DOMAIN).toLowerCase().replace(/^\.+|\.+$/g, "");
  if (!DOMAIN.test(baseDomain)) fail("AZHEXGATE_BASE_DOMAIN", `"${baseDomain}" is not a domain name (e.g. azhexgate.com)`);

  const namespace = get("AZHEXGATE_RELAY_NAMESPACE");
  const keyName = get("AZHEXGATE_RELAY_KEY_NAME");
  const key = get("AZHEXGATE_RELAY_KEY");
  if (!namespace) {
    for (const name of ["AZHEXGATE_RELAY_KEY_NAME", "AZHEXGATE_RELAY_KEY", "AZHEXGATE_RELAY_CLOUD"] as const) {
      if (get(name)) fail(name, "is set but AZHEXGATE_RELAY_NAMESPACE is not: set the namespace, or unset it to use the local relay emulator");
    }
    return Object.freeze({
      mode: "local" as const,
      reason: "AZHEXGATE_RELAY_NAMESPACE is not set: using the local relay emulator",
      baseDomain,
    });
  }

  const cloudText = get("AZHEXGATE_RELAY_CLOUD")?.toLowerCase();
  if (cloudText !== undefined && !CLOUDS.includes(cloudText as Cloud)) {
    fail("AZHEXGATE_RELAY_CLOUD", `must be one of ${CLOUDS.join(", ")} (got "${cloudText}")`);
  }
  let endpoint: RelayEndpoint;
  try {
    endpoint = resolveNamespace(namespace, (cloudText as Cloud | undefined) ?? "public");
  } catch (e) {
    return fail("AZHEXGATE_RELAY_NAMESPACE", `is not usable: ${(e as Error).message}`);
  }
  const hostCloud = cloudOf(endpoint.host);
  if (cloudText && hostCloud && hostCloud !== cloudText) {
    fail("AZHEXGATE_RELAY_CLOUD", `is "${cloudText}" but AZHEXGATE_RELAY_NAMESPACE ${endpoint.host} is in the ${hostCloud} cloud`);
  }
  const cloud: Cloud = hostCloud ?? (cloudText as Cloud | undefined) ?? "public";
  const firstLabel = endpoint.host.replace(/:\d+$/, "").split(".")[0] ?? "";
  const armNamespace = NAMESPACE_NAME.test(firstLabel) ? firstLabel.toLowerCase() : undefined;

  if (keyName && !key) fail("AZHEXGATE_RELAY_KEY", "is not set but AZHEXGATE_RELAY_KEY_NAME is: set both (a namespace SAS rule and its key) or neither");
  if (key && !keyName) fail("AZHEXGATE_RELAY_KEY_NAME", "is not set but AZHEXGATE_RELAY_KEY is: name the SAS rule the key belongs to (e.g. RootManageSharedAccessKey)");
  if (keyName && !RULE_NAME.test(keyName)) fail("AZHEXGATE_RELAY_KEY_NAME", `"${keyName}" is not a SAS rule name (letters, digits, . _ -)`);
  if (key && /[\s\x00-\x1f]/.test(key)) fail("AZHEXGATE_RELAY_KEY", "contains whitespace or control characters (value not shown)");

  const subscriptionId = get("AZURE_SUBSCRIPTION_ID");
  const resourceGroup = get("AZURE_RESOURCE_GROUP");
  if (subscriptionId && !GUID.test(subscriptionId)) fail("AZURE_SUBSCRIPTION_ID", `"${subscriptionId}" is not a subscription id (a GUID)`);
  if (resourceGroup && (!RESOURCE_GROUP.test(resourceGroup) || resourceGroup.endsWith("."))) {
    fail("AZURE_RESOURCE_GROUP", `"${resourceGroup}" is not a resource group name`);
  }
  if (subscriptionId && !resourceGroup) fail("AZURE_RESOURCE_GROUP", "is not set but AZURE_SUBSCRIPTION_ID is: both name where the relay namespace lives");
  if (resourceGroup && !subscriptionId) fail("AZURE_SUBSCRIPTION_ID", "is not set but AZURE_RESOURCE_GROUP is: both name where the relay namespace lives");
  if (subscriptionId && !armNamespace) {
    fail("AZHEXGATE_RELAY_NAMESPACE", `${endpoint.host} has no namespace name for ARM: use the short name or the FQDN`);
  }
  if (!key && !subscriptionId) {
    fail(
      "AZHEXGATE_RELAY_KEY",
      "is not set and neither are AZURE_SUBSCRIPTION_ID / AZURE_RESOURCE_GROUP: listener tokens need either a key or ARM access to read one",
    );
  }

  const clientId = get("AZURE_CLIENT_ID");
  if (clientId && !GUID.test(clientId)) fail("AZURE_CLIENT_ID", `"${clientId}" is not a client id (a GUID)`);

  let keyRefreshSeconds = DEFAULT_KEY_REFRESH_SECONDS;
  const refresh = get("AZHEXGATE_RELAY_KEY_REFRESH_SECONDS");
  if (refresh !== undefined) {
    keyRefreshSeconds = /^\d+$/.test(refresh) ? Number(refresh) : Number.NaN;
    if (!(keyRefreshSeconds >= MIN_KEY_REFRESH_SECONDS && keyRefreshSeconds <= MAX_KEY_REFRESH_SECONDS)) {
      fail("AZHEXGATE_RELAY_KEY_REFRESH_SECONDS", `must be whole seconds from ${MIN_KEY_REFRESH_SECONDS} to ${MAX_KEY_REFRESH_SECONDS} (got "${refresh}")`);
    }
  }

  return Object.freeze(
    new AzureRelaySettings(
      {
        mode: "azure",
        namespace,
        endpoint: Object.freeze({ ...endpoint }),
        armNamespace,
        cloud,
        keyName,
        subscriptionId,
        resourceGroup,
        managedIdentityClientId: clientId,
        keyRefreshSeconds,
        baseDomain,
      },
      key,
    ),
  );
}

/** The key lives in a private field behind a getter: not in JSON, spreading, `Bun.inspect` or `toString`. */
class AzureRelaySettings implements RelaySettings {
  readonly mode = "azure" as const;
  readonly namespace!: string;
  readonly endpoint!: RelayEndpoint;
  readonly armNamespace!: string | undefined;
  readonly cloud!: Cloud;
  readonly keyName!: string | undefined;
  readonly subscriptionId!: string | undefined;
  readonly resourceGroup!: string | undefined;
  readonly managedIdentityClientId!: string | undefined;
  readonly keyRefreshSeconds!: number;
  readonly baseDomain!: string;
  readonly #key: string | undefined;

  constructor(fields: Omit<RelaySettings, "key">, key: string | undefined) {
    Object.assign(this, fields);
    this.#key = key;
  }

  get key(): string | undefined {
    return this.#key;
  }

  toString(): string {
    return `azure relay ${this.endpoint.host} (${this.cloud}; key ${this.keyName ? `${this.keyName}: set` : "from ARM"})`;
  }
}

/**
 * The Azure-mode RelayBinding: hybrid connections provisioned through ARM (`@azure/arm-relay`),
 * listener tokens signed with an env key or with the HC's Listen rule key read through ARM, and the
 * gateway's sender credential. The Azure SDK packages are imported here, lazily, only when needed.
 *
 * Credential (ARM calls and Entra sender tokens): `opts.credential` if given, else
 * `DefaultAzureCredential` (managed identity `AZURE_CLIENT_ID` when set), created only when ARM is
 * configured or the sender needs Entra.
 * Sender token precedence: 1. `opts.credential` → Entra; 2. env key (AZHEXGATE_RELAY_KEY_NAME/KEY)
 * → SAS (the rule needs Send); 3. DefaultAzureCredential → Entra.
 * Listener keys: env key if set (namespace rule), else ARM `listKeys` of the HC's `azhexgate-listen` rule.
 */
import type { TokenCredential } from "@azure/core-auth";
import type { RelayAPI } from "@azure/arm-relay";
import type { Cloud, RelayEndpoint } from "../hc/address.ts";
import { CLOUDS } from "../hc/clouds.ts";
import { credentialTokenProvider, sasTokenProvider, type TokenProvider } from "../hc/tokens.ts";
import { type BindingLog, cachedKeyIssuer, envKeyIssuer, type ListenKey } from "./azure-keys.ts";
import { NO_PROPAGATION, retryWhileRolePropagates, type RolePropagation } from "./propagation.ts";
import type { RelaySettings } from "./settings.ts";
import type { HcInfo, ListenerTokenIssuer, Provisioner, RelayBinding } from "./types.ts";

/** The per-HC SAS rule `azhexgate connect`'s tokens are signed with (Send right only; created on first use). */
export const SEND_RULE = "azhexgate-send";
/** The per-HC SAS rule agents' tokens are signed with (Listen right only). */
export const LISTEN_RULE = "azhexgate-listen";

/** ARM endpoint per cloud (from the clouds table, src/hc/clouds.ts). */
export const ARM_ENDPOINTS: Readonly<Record<Cloud, string>> = Object.freeze({
  public: CLOUDS.public.armEndpoint,
  usgov: CLOUDS.usgov.armEndpoint,
  china: CLOUDS.china.armEndpoint,
});

export interface AzureBindingOptions {
  /** Credential for ARM and the sender's Entra tokens (default: DefaultAzureCredential, lazily). */
  credential?: TokenCredential;
  /** ARM endpoint (default per cloud, e.g. https://management.azure.com); the emulator in tests. */
  armEndpoint?: string;
  /** Extra CA (PEM) the ARM client trusts (the emulator's self-signed certificate). */
  armTlsCa?: string;
  /** Data-plane endpoint override (the emulator in tests); default: from the settings. */
  endpoint?: RelayEndpoint;
  log?: BindingLog;
  now?: () => number;
  /** Re-read ARM keys older than this (default settings.keyRefreshSeconds). */
  keyRefreshMs?: number;
  /** Sender Entra tokens are refreshed this long before expiry (default 5 min). */
  senderRefreshBeforeMs?: number;
  /** ARM 401/403 inside this window are retried as "role assignment not yet effective" (default: none). */
  rolePropagation?: RolePropagation;
  /** Backoff of those retries (defaults 1 s doubling to 15 s, at most 20 s per call). */
  roleRetry?: { firstDelayMs?: number; maxDelayMs?: number; budgetMs?: number };
}

/** Provisioning needs ARM coordinates that are not configured. Not retryable. */
export class ProvisioningUnavailableError extends Error {
  override readonly name = "ProvisioningUnavailableError";
  readonly code = "provisioning_unavailable";
  readonly retryable = false;
}

/** An ARM call failed; `status` / `armCode` from ARM, `retryable` for 429 / 5xx / no answer. */
export class RelayArmError extends Error {
  override readonly name = "RelayArmError";
  readonly code = "arm_failed";
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly armCode: string | undefined,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown })?.statusCode;
  return typeof s === "number" ? s : undefined;
}

/**
 * A RestError → RelayArmError with status / code / message only (never the request or response).
 * A 401/403 while role assignments may still be propagating (`propagating`) is retryable.
 */
function armError(action: string, hcPath: string, err: unknown, propagating = false): RelayArmError {
  const status = statusOf(err);
  const code = (err as { code?: unknown })?.code;
  const armCode = typeof code === "string" ? code : undefined;
  const text = err instanceof Error ? err.message : String(err);
  const denied = status === 401 || status === 403;
  const hint = !denied
    ? ""
    : propagating
      ? " (role assignment not yet effective: Azure takes minutes to apply a new role assignment; retry shortly)"
      : " (does the gateway's identity hold a role on the relay namespace?)";
  return new RelayArmError(
    `ARM ${action} for hybrid connection "${hcPath}" failed (${status ?? "no HTTP status"}${armCode ? ` ${armCode}` : ""}): ${text}${hint}`,
    status,
    armCode,
    status === undefined || status === 429 || status >= 500 || (denied && propagating),
  );
}

export async function createAzureBinding(settings: RelaySettings, opts: AzureBindingOptions = {}): Promise<RelayBinding> {
  const log: BindingLog = opts.log ?? (() => {});
  const now = opts.now ?? Date.now;
  const endpoint = opts.endpoint ?? settings.endpoint;
  const envKey: ListenKey | undefined = settings.keyName && settings.key ? { keyName: settings.keyName, key: settings.key } : undefined;
  const arm =
    settings.subscriptionId && settings.resourceGroup && settings.armNamespace
      ? { subscriptionId: settings.subscriptionId, resourceGroup: settings.resourceGroup, namespace: settings.armNamespace }
      : undefined;
  const senderKind: "entra" | "sas" = opts.credential || !envKey ? "entra" : "sas";
  const cloud = CLOUDS[settings.cloud];
  if (senderKind === "entra" && !opts.credential && cloud.senderAuthDefault === "sas") {
    // Entra ID for Relay is not GA (China) or not confirmed (US Government): SAS by default there.
    throw new ProvisioningUnavailableError(
      `the gateway's relay sender needs a SAS key in the ${cloud.name}: Entra ID for Azure Relay is ${cloud.entraForRelay === "not-ga" ? "not generally available" : "not confirmed"} there. Set AZHEXGATE_RELAY_KEY_NAME and AZHEXGATE_RELAY_KEY (a namespace rule with Send and Listen)`,
    );
  }

  let credential: TokenCredential | undefined = opts.credential;
  let credentialKind = opts.credential ? "custom TokenCredential" : "none";
  if (!credential && (arm || senderKind === "entra")) {
    const { DefaultAzureCredential } = await import("@azure/identity");
    const clientId = settings.managedIdentityClientId;
    credential = new DefaultAzureCredential({
      ...(clientId ? { managedIdentityClientId: clientId } : {}),
      ...(settings.cloud === "public" ? {} : { authorityHost: cloud.authorityHost }),
    });
    credentialKind = clientId ? `DefaultAzureCredential (managed identity ${clientId})` : "DefaultAzureCredential";
  }

  let client: Promise<RelayAPI> | undefined;
  const armClient = (): Promise<RelayAPI> => {
    client ??= (async () => {
      const { RelayAPI } = await import("@azure/arm-relay");
      return new RelayAPI(credential as TokenCredential, arm?.subscriptionId ?? "", {
        endpoint: opts.armEndpoint ?? ARM_ENDPOINTS[settings.cloud],
        ...(opts.armTlsCa ? { tlsOptions: { ca: opts.armTlsCa } } : {}),
        userAgentOptions: { userAgentPrefix: "azhexgate" },
      });
    })();
    client.catch(() => {
      client = undefined;
    });
    return client;
  };

  // ARM answers 403 AuthorizationFailed until the gateway's role assignment has propagated
  // (minutes; see propagation.ts): inside the window those are retried, logged once per kind.
  const rp = opts.rolePropagation ?? NO_PROPAGATION;
  const arm403 = <T>(fn: () => Promise<T>): Promise<T> =>
    retryWhileRolePropagates(fn, { rp, kind: (status) => `ARM ${status} on Microsoft.Relay`, statusOf, now, ...opts.roleRetry });
  const fail = (action: string, hcPath: string, err: unknown) => armError(action, hcPath, err, rp.pending());

  const requireArm = (what: string) => {
    if (!arm) {
      throw new ProvisioningUnavailableError(
        `cannot ${what}: AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP are not set, so hybrid connections must be created beforehand (e.g. by infra)`,
      );
    }
    return arm;
  };

  /** Reads the key of one of the HC's own rules (ARM `listKeys`), adding the rule when it is missing. */
  const readRuleKey = (rule: string, right: "Listen" | "Send") => async (hcPath: string): Promise<ListenKey> => {
    const a = requireArm(`read the ${right.toLowerCase()} key of hybrid connection "${hcPath}"`);
    const hcs = (await armClient()).hybridConnections;
    const list = () => arm403(() => hcs.listKeys(a.resourceGroup, a.namespace, hcPath, rule));
    let keys: Awaited<ReturnType<typeof list>>;
    try {
      keys = await list();
    } catch (err) {
      if (statusOf(err) !== 404) throw fail("listKeys", hcPath, err);
      // the HC exists without our rule (made by infra / an older version / before TCP tunnels): add it, then read
      try {
        await arm403(() => hcs.createOrUpdateAuthorizationRule(a.resourceGroup, a.namespace, hcPath, rule, { rights: [right] }));
        keys = await list();
      } catch (e) {
        throw fail("listKeys", hcPath, e);
      }
    }
    if (!keys.primaryKey) throw new RelayArmError(`ARM listKeys for hybrid connection "${hcPath}" returned no primary key`, 200, undefined, true);
    return { keyName: keys.keyName ?? rule, key: keys.primaryKey };
  };
  const readKey = readRuleKey(LISTEN_RULE, "Listen");

  const cached = envKey
    ? undefined
    : cachedKeyIssuer({ endpoint, readKey, refreshMs: opts.keyRefreshMs ?? settings.keyRefreshSeconds * 1000, now, log });
  /**
   * Send tokens for `azhexgate connect` (issue 16) are signed with a per-HC Send-only rule
   * (`azhexgate-send`, created through ARM on first use), never with the namespace key: a SAS
   * token carries the rights of the rule that signed it, so one signed with the env key (Send +
   * Listen) would let a connecting user listen on the tunnel's hybrid connection and take its
   * traffic. Without ARM (env key only) there is no such rule: the connect route answers 501.
   */
  const sendCached = envKey
    ? undefined
    : cachedKeyIssuer({ endpoint, readKey: readRuleKey(SEND_RULE, "Send"), refreshMs: opts.keyRefreshMs ?? settings.keyRefreshSeconds * 1000, now, log });
  if (cached && sendCached) (cached as ListenerTokenIssuer).issueSend = (hcPath, ttl) => sendCached.issue(hcPath, ttl);
  const issuer: ListenerTokenIssuer = cached ?? envKeyIssuer(endpoint, envKey as ListenKey, now, log);

  const provisioner: Provisioner = {
    async ensure(hcPath) {
      const a = requireArm(`create hybrid connection "${hcPath}"`);
      const hcs = (await armClient()).hybridConnections;
      try {
        await arm403(() => hcs.createOrUpdate(a.resourceGroup, a.namespace, hcPath, { requiresClientAuthorization: true }));
        await arm403(() => hcs.createOrUpdateAuthorizationRule(a.resourceGroup, a.namespace, hcPath, LISTEN_RULE, { rights: ["Listen"] }));
      } catch (err) {
        throw fail("create", hcPath, err);
      }
    },
    async remove(hcPath) {
      const a = requireArm(`delete hybrid connection "${hcPath}"`);
      cached?.forget(hcPath);
      sendCached?.forget(hcPath);
      const hcs = (await armClient()).hybridConnections;
      try {
        await arm403(() => hcs.delete(a.resourceGroup, a.namespace, hcPath));
      } catch (err) {
        if (statusOf(err) !== 404) throw fail("delete", hcPath, err);
      }
    },
    ...(arm
      ? {
          /** ARM `listByNamespace` (paged; the SDK follows nextLink), for the reconciler. */
          async list(): Promise<HcInfo[]> {
            const hcs = (await armClient()).hybridConnections;
            return arm403(async () => {
              const out: HcInfo[] = [];
              for await (const hc of hcs.listByNamespace(arm.resourceGroup, arm.namespace)) {
                if (hc.name) out.push({ name: hc.name, createdAt: hc.createdAt?.getTime(), updatedAt: hc.updatedAt?.getTime() });
                if (out.length >= 100_000) break; // far past the namespace quota: stop reading
              }
              return out;
            }).catch((err) => {
              throw fail("listByNamespace", "*", err);
            });
          },
        }
      : {}),
  };

  const senderToken: TokenProvider =
    senderKind === "entra"
      ? credentialTokenProvider(credential as TokenCredential, { scope: cloud.relayScope, now, refreshBeforeMs: opts.senderRefreshBeforeMs })
      : sasTokenProvider((envKey as ListenKey).keyName, (envKey as ListenKey).key, 3600, now);

  log("relay.binding", {
    mode: "azure",
    namespace: endpoint.host,
    cloud: settings.cloud,
    credential: credentialKind,
    sender: senderKind === "entra" ? "entra" : `sas (${envKey?.keyName})`,
    listenerKeys: envKey ? `env (${envKey.keyName})` : `arm (${LISTEN_RULE})`,
    provisioning: arm ? `arm (${arm.resourceGroup}/${arm.namespace})` : "unavailable",
  });

  return {
    mode: "azure",
    endpoint,
    provisioner,
    issuer,
    senderToken,
    async close() {
      cached?.clear();
      sendCached?.clear();
    },
  };
}

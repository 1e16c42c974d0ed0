/**
 * The per-cloud values azhexgate needs, in one table: Relay DNS suffix, Relay token scope, Key
 * Vault scope, ARM endpoint, Entra authority host, and whether Entra ID for Relay is confirmed
 * there. Every value names its source. Pure data.
 *
 * Scope form: Microsoft's Relay clients ask for the resource `https://relay.azure.net/` plus
 * `/.default`, i.e. `https://relay.azure.net//.default` with a double slash — Azure/azure-relay-dotnet
 * src/Microsoft.Azure.Relay/TokenProvider.cs (`AadRelayAudience = "https://relay.azure.net/"`,
 * scope `AadRelayAudience + "/.default"`), the Java client's AzureIdentityTokenProvider.java, and the
 * RBAC samples in Azure/azure-relay samples/hybrid-connections/node/rolebasedaccesscontrol
 * (`relay_aad_audience = "https://relay.azure.net//.default"`). The token's `aud` is the resource
 * either way; we use the exact string Microsoft's clients send.
 */

export type Cloud = "public" | "usgov" | "china";

/** Whether Entra ID (Microsoft Entra) authorization for Relay data-plane calls is known to work. */
export type EntraStatus = "ga" | "not-ga" | "unconfirmed";

export interface CloudValues {
  readonly name: string;
  /** `{namespace}.{relaySuffix}` is a Relay namespace's host. */
  readonly relaySuffix: string;
  /** Scope asked of a TokenCredential for Relay data-plane tokens. */
  readonly relayScope: string;
  readonly entraForRelay: EntraStatus;
  /**
   * How the gateway's sender authenticates when nothing says otherwise: Entra where it is GA,
   * SAS (AZHEXGATE_RELAY_KEY_NAME / _KEY) where Entra for Relay is not GA or not confirmed.
   */
  readonly senderAuthDefault: "entra" | "sas";
  /** Key Vault's data-plane scope (API keys from Key Vault). */
  readonly keyVaultScope: string;
  /** Key Vault hosts end with this (`{vault}.{keyVaultSuffix}`). */
  readonly keyVaultSuffix: string;
  /** Azure Resource Manager endpoint (hybrid connection provisioning). */
  readonly armEndpoint: string;
  /** Microsoft Entra authority host (for credentials that sign in, e.g. client secrets / workload identity). */
  readonly authorityHost: string;
}

export const CLOUDS: Readonly<Record<Cloud, CloudValues>> = Object.freeze({
  public: Object.freeze({
    name: "Azure public cloud",
    // servicebus.windows.net: learn.microsoft.com/azure/azure-relay/relay-hybrid-connections-protocol
    relaySuffix: "servicebus.windows.net",
    // resource https://relay.azure.net: learn.microsoft.com/azure/azure-relay/authenticate-application;
    // double-slash form: TokenProvider.cs / AzureIdentityTokenProvider.java / RBAC samples (see above)
    relayScope: "https://relay.azure.net//.default",
    // "generally available in all regions except Microsoft Azure operated by 21Vianet" (authenticate-application)
    entraForRelay: "ga",
    senderAuthDefault: "entra",
    // vault.azure.net: learn.microsoft.com/azure/key-vault/general/authentication (scope https://vault.azure.net/.default)
    keyVaultScope: "https://vault.azure.net/.default",
    keyVaultSuffix: "vault.azure.net",
    // learn.microsoft.com/azure/azure-resource-manager/management/overview; @azure/arm-relay default endpoint
    armEndpoint: "https://management.azure.com",
    // @azure/identity AzureAuthorityHosts.AzurePublicCloud
    authorityHost: "https://login.microsoftonline.com",
  }),
  usgov: Object.freeze({
    name: "Azure US Government",
    // servicebus.usgovcloudapi.net: Azure environment AzureUSGovernment ServiceBusEndpointSuffix;
    // learn.microsoft.com/azure/azure-government/compare-azure-government-global-azure
    relaySuffix: "servicebus.usgovcloudapi.net",
    // UNCONFIRMED: no Microsoft page or SDK names the Relay Entra resource for US Government
    // (authenticate-application.md lists only the public value; the .NET client hard-codes it).
    // We assume the public resource, as the .NET client would send, and default to SAS here.
    relayScope: "https://relay.azure.net//.default",
    entraForRelay: "unconfirmed",
    senderAuthDefault: "sas",
    // vault.usgovcloudapi.net: Azure PowerShell / CLI built-in environment AzureUSGovernment
    // (AzureKeyVaultDnsSuffix, AzureKeyVaultServiceEndpointResourceId https://vault.usgovcloudapi.net)
    keyVaultScope: "https://vault.usgovcloudapi.net/.default",
    keyVaultSuffix: "vault.usgovcloudapi.net",
    // management.usgovcloudapi.net: `az cloud show -n AzureUSGovernment` resourceManager; azure_core AZURE_US_GOVERNMENT_CLOUD
    armEndpoint: "https://management.usgovcloudapi.net",
    // login.microsoftonline.us: learn.microsoft.com/entra/identity-platform/authentication-national-cloud;
    // @azure/identity AzureAuthorityHosts.AzureGovernment
    authorityHost: "https://login.microsoftonline.us",
  }),
  china: Object.freeze({
    name: "Azure operated by 21Vianet (China)",
    // servicebus.chinacloudapi.cn: docs.azure.cn/azure-relay (namespace hosts); AzureChinaCloud ServiceBusEndpointSuffix
    relaySuffix: "servicebus.chinacloudapi.cn",
    // resource https://relay.chinacloudapi.cn: docs.azure.cn/azure-relay/authenticate-application
    // (double-slash form as Microsoft's clients build it); but Entra for Relay is NOT GA there
    // ("generally available in all regions except Microsoft Azure operated by 21Vianet"), so SAS.
    relayScope: "https://relay.chinacloudapi.cn//.default",
    entraForRelay: "not-ga",
    senderAuthDefault: "sas",
    // vault.azure.cn: Azure PowerShell built-in environment AzureChinaCloud (AzureKeyVaultDnsSuffix,
    // AzureKeyVaultServiceEndpointResourceId https://vault.azure.cn)
    keyVaultScope: "https://vault.azure.cn/.default",
    keyVaultSuffix: "vault.azure.cn",
    // management.chinacloudapi.cn: AzureChinaCloud ResourceManagerUrl (same environment table)
    armEndpoint: "https://management.chinacloudapi.cn",
    // login.chinacloudapi.cn: authentication-national-cloud; @azure/identity AzureAuthorityHosts.AzureChina
    authorityHost: "https://login.chinacloudapi.cn",
  }),
});

export const CLOUD_NAMES = Object.freeze(Object.keys(CLOUDS) as Cloud[]);

/** The cloud a Key Vault URL belongs to (public for anything else, e.g. a loopback test vault). */
export function keyVaultCloudOf(vaultUrl: string): Cloud {
  let host = "";
  try {
    host = new URL(vaultUrl).hostname.toLowerCase();
  } catch {
    return "public";
  }
  return CLOUD_NAMES.find((c) => host.endsWith(`.${CLOUDS[c].keyVaultSuffix}`)) ?? "public";
}

/** The Key Vault scope for a vault URL (`https://x.vault.azure.cn` → `https://vault.azure.cn/.default`). */
export function keyVaultScopeFor(vaultUrl: string): string {
  return CLOUDS[keyVaultCloudOf(vaultUrl)].keyVaultScope;
}

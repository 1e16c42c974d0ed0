// azhexgate on Azure: Relay namespace, gateway on App Service for Linux containers with a
// user-assigned managed identity, Azure Managed Redis as the tunnel registry, Key Vault for the
// API keys, a separate Key Vault for the TLS certificate, Azure DNS, Log Analytics.
// The whole path, step by step (two deployments: before and after DNS + certificate): docs/deploy.md.
//
//   az deployment group create -g RG -f infra/main.bicep -p baseDomain=example.com image=REGISTRY/azhexgate:TAG ...
targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Short prefix for resource names (lowercase letters and digits).')
@minLength(3)
@maxLength(12)
param prefix string = 'azhexgate'

@description('Public base domain: tunnels are {id}.{baseDomain}, the management API is api.{baseDomain}.')
param baseDomain string

@description('Gateway image (built from the repository Dockerfile), e.g. myregistry.azurecr.io/azhexgate:0.1.0.')
param image string

@description('Name of an existing Azure Container Registry holding the image (pulled with the managed identity); empty = a public image.')
param acrName string = ''

@description('Resource group of that registry.')
param acrResourceGroup string = resourceGroup().name

@description('App Service plan SKU. P0v3 or larger: Basic (B1) allows only 350 WebSockets per instance.')
param planSku string = 'P0v3'

@description('Gateway instances (the registry is shared Redis, so more than one is fine).')
@minValue(1)
param instanceCount int = 1

@description('Azure Managed Redis SKU for the tunnel registry.')
param redisSku string = 'Balanced_B0'

@secure()
@description('First management API keys (comma or newline separated) written to Key Vault; empty = create the secret later (docs/deploy.md).')
param apiKeys string = ''

@description('Management API: CIDR ranges allowed to call it (empty = any).')
param apiAllowCidrs string = ''

// The peer the container sees is App Service's front end, on an internal address that Microsoft
// does not document; the client is in X-Forwarded-For. Private, CGNAT and link-local ranges are
// trusted: nothing outside the platform reaches the container's port directly (docs/deploy.md).
@description('CIDRs whose X-Forwarded-For the gateway believes (the platform front end).')
param trustedProxies string = '10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,169.254.0.0/16,fc00::/7,fe80::/10'

@description('Create the Azure DNS zone for baseDomain and its records (false: create the records from the `dnsRecords` output at your DNS host).')
param createDnsZone bool = true

@description('Second deployment: bind *.{baseDomain} and api.{baseDomain} with the certificate (DNS delegated, certificate imported).')
param bindCustomDomains bool = false

@description('Also bind the apex {baseDomain} (A record to the inbound IP; the certificate must name the apex).')
param bindApex bool = false

@description('Name of the certificate in the certificate Key Vault (must cover *.{baseDomain}).')
param certificateName string = 'azhexgate-wildcard'

@description('Object id of the App Service resource provider principal in your tenant: az ad sp show --id abfa0a7c-a6b6-4736-8310-5855508787cd --query id -o tsv')
param appServiceObjectId string = ''

@description('Object id of the operator (az ad signed-in-user show --query id -o tsv): may rotate API keys and import the certificate; empty = none.')
param operatorPrincipalId string = ''

// ---- identity and limits (optional; docs/access.md) ------------------------------------------
@description('OIDC issuer for the management API, e.g. https://login.microsoftonline.com/{tenant-id}/v2.0; empty = API keys only.')
param oidcIssuer string = ''
@description('Accepted token audiences (the API app registration\'s Application ID URI and / or client id), comma separated.')
param oidcAudience string = ''
@description('Allowed tenant ids, comma separated (empty = any the issuer signs for).')
param oidcTenants string = ''
@description('Group object ids whose members may use the API, comma separated (empty = any).')
param oidcGroups string = ''
@description('Group object id whose members may list and delete every tunnel.')
param oidcAdminGroup string = ''
@description('Client id of the public client `azhexgate login` signs in with (device code).')
param oidcCliClientId string = ''
@description('Scopes `azhexgate login` asks for (default: openid profile offline_access {audience}/.default).')
param oidcCliScopes string = ''
@description('Client id of the gateway\'s confidential client for `start --entra` visitor sign-in; empty = no visitor sign-in.')
param visitorClientId string = ''
@secure()
@description('Its client secret, written to the app Key Vault (the app setting is a Key Vault reference).')
param visitorClientSecret string = ''
@secure()
@description('Key signing visitor sessions (32+ characters, e.g. openssl rand -base64 48), written to the app Key Vault.')
param visitorCookieKey string = ''
@description('Per-tunnel limits: default and maximum request rate (e.g. 100/s), concurrent streams, bandwidth (e.g. 10m); empty = none.')
param limitRate string = ''
param limitRateMax string = ''
param limitStreams string = ''
param limitStreamsMax string = ''
param limitBandwidth string = ''
param limitBandwidthMax string = ''

var suffix = uniqueString(resourceGroup().id)

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: { location: location, name: '${prefix}-logs-${suffix}' }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: { location: location, name: '${prefix}-gateway-id' }
}

module relay 'modules/relay.bicep' = {
  name: 'relay'
  params: { location: location, name: '${prefix}-relay-${suffix}', gatewayPrincipalId: identity.outputs.principalId }
}

module keyvault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    name: take('${prefix}kv${suffix}', 24)
    gatewayPrincipalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    apiKeys: apiKeys
  }
}

module visitorSecrets 'modules/visitor-secrets.bicep' = if (!empty(visitorClientSecret) || !empty(visitorCookieKey)) {
  name: 'visitor-secrets'
  params: { vaultName: keyvault.outputs.name, visitorClientSecret: visitorClientSecret, visitorCookieKey: visitorCookieKey }
}

module certvault 'modules/certvault.bicep' = {
  name: 'certvault'
  params: {
    location: location
    name: take('${prefix}tls${suffix}', 24)
    appServiceObjectId: appServiceObjectId
    operatorPrincipalId: operatorPrincipalId
  }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  params: { location: location, name: '${prefix}-registry-${suffix}', skuName: redisSku }
}

module acrPull 'modules/acr-pull.bicep' = if (!empty(acrName)) {
  name: 'acr-pull'
  scope: resourceGroup(acrResourceGroup)
  params: { registryName: acrName, principalId: identity.outputs.principalId }
}

module gateway 'modules/gateway.bicep' = {
  name: 'gateway'
  params: {
    location: location
    name: '${prefix}-gateway-${suffix}'
    image: image
    planSku: planSku
    instanceCount: instanceCount
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    pullWithIdentity: !empty(acrName)
    relayNamespace: relay.outputs.namespaceName
    baseDomain: baseDomain
    keyVaultUrl: keyvault.outputs.vaultUrl
    apiKeysSecretName: keyvault.outputs.apiKeysSecretName
    apiAllowCidrs: apiAllowCidrs
    trustedProxies: trustedProxies
    redisClusterName: redis.outputs.clusterName
    redisPort: redis.outputs.port
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
    oidcIssuer: oidcIssuer
    oidcAudience: oidcAudience
    oidcTenants: oidcTenants
    oidcGroups: oidcGroups
    oidcAdminGroup: oidcAdminGroup
    oidcCliClientId: oidcCliClientId
    oidcCliScopes: oidcCliScopes
    visitorClientId: visitorClientId
    limitRate: limitRate
    limitRateMax: limitRateMax
    limitStreams: limitStreams
    limitStreamsMax: limitStreamsMax
    limitBandwidth: limitBandwidth
    limitBandwidthMax: limitBandwidthMax
  }
  // the image pull needs AcrPull first
  dependsOn: [ acrPull ]
}

module dns 'modules/dns.bicep' = {
  name: 'dns'
  params: {
    zoneName: baseDomain
    createZone: createDnsZone
    siteHostName: gateway.outputs.defaultHostName
    verificationId: gateway.outputs.customDomainVerificationId
    bindApex: bindApex
    apexIp: bindApex ? gateway.outputs.inboundIpAddress : ''
  }
}

module domains 'modules/domains.bicep' = if (bindCustomDomains) {
  name: 'domains'
  params: {
    location: location
    siteName: gateway.outputs.siteName
    planId: gateway.outputs.planId
    baseDomain: baseDomain
    bindApex: bindApex
    certificateVaultId: certvault.outputs.id
    certificateName: certificateName
  }
  // App Service checks the asuid TXT records before it binds a hostname
  dependsOn: [ dns ]
}

output apiUrl string = 'https://api.${baseDomain}'
output tunnelUrlPattern string = 'https://{id}.${baseDomain}'
output gatewayDefaultHostName string = gateway.outputs.defaultHostName
output relayNamespace string = relay.outputs.namespaceName
output keyVaultName string = keyvault.outputs.name
output certificateVaultName string = certvault.outputs.name
output nameServers array = dns.outputs.nameServers
output dnsRecords array = dns.outputs.records

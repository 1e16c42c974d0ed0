// The gateway: App Service for Linux containers (the repository's Dockerfile image) with the
// user-assigned managed identity. Why App Service and not Container Apps: docs/deploy.md.
// App settings are read by src/config.ts and src/control/settings.ts; WEBSITES_* by the
// platform (test/infra.test.ts keeps the names in sync with the loaders).
param location string
param name string
@description('Full image reference, e.g. myregistry.azurecr.io/azhexgate:0.1.0 or ghcr.io/owner/azhexgate:0.1.0.')
param image string
@description('App Service plan SKU: P0v3 and up (Standard / Premium: no limit on WebSockets per instance; Basic allows 350).')
param planSku string
param instanceCount int
param identityId string
param identityClientId string
@description('True when the image comes from a private Azure Container Registry the identity holds AcrPull on.')
param pullWithIdentity bool
param relayNamespace string
param baseDomain string
param keyVaultUrl string
param apiKeysSecretName string
param apiAllowCidrs string
param trustedProxies string
param redisClusterName string
param redisPort int
param logAnalyticsWorkspaceId string
// identity and limits (docs/access.md); empty = off
param oidcIssuer string = ''
param oidcAudience string = ''
param oidcTenants string = ''
param oidcGroups string = ''
param oidcAdminGroup string = ''
param oidcCliClientId string = ''
param oidcCliScopes string = ''
param visitorClientId string = ''
param limitRate string = ''
param limitRateMax string = ''
param limitStreams string = ''
param limitStreamsMax string = ''
param limitBandwidth string = ''
param limitBandwidthMax string = ''

resource redis 'Microsoft.Cache/redisEnterprise@2025-07-01' existing = {
  name: redisClusterName
}

resource redisDb 'Microsoft.Cache/redisEnterprise/databases@2025-07-01' existing = {
  parent: redis
  name: 'default'
}

// rediss://:KEY@host:10000 — TLS plus the access key as the password (URL-encoded: keys hold
// '+', '/' and '='). Bun's RedisClient takes both from the URL (checked by test/infra.test.ts
// against a TLS redis-server). Set directly rather than as a Key Vault reference: an unresolved
// reference reaches the app as the literal "@Microsoft.KeyVault(...)" text (docs/deploy.md).
var registryUrl = 'rediss://:${uriComponent(redisDb.listKeys().primaryKey)}@${redis.properties.hostName}:${redisPort}'

// Visitor sign-in secrets as Key Vault references, resolved by App Service with the user-assigned
// identity (keyVaultReferenceIdentity below; https://learn.microsoft.com/azure/app-service/app-service-key-vault-references).
// An unresolved reference arrives as its literal "@Microsoft.KeyVault(...)" text: the gateway
// refuses to start with that as a secret (src/identity-settings.ts) rather than sign with it.
var visitorClientSecretRef = empty(visitorClientId) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVaultUrl}secrets/azhexgate-visitor-client-secret)'
var visitorCookieKeyRef = empty(visitorClientId) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVaultUrl}secrets/azhexgate-visitor-cookie-key)'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${name}-plan'
  location: location
  kind: 'linux'
  sku: { name: planSku, capacity: instanceCount }
  properties: { reserved: true }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  kind: 'app,linux,container'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      linuxFxVersion: 'DOCKER|${image}'
      acrUseManagedIdentityCreds: pullWithIdentity
      acrUserManagedIdentityID: pullWithIdentity ? identityClientId : null
      alwaysOn: true
      webSocketsEnabled: true
      // HTTP/1.1 from browsers to the front end: the WebSocket upgrade path the gateway is
      // tested with (HTTP/2 would put RFC 8441 WebSockets on the front end; not tried on Azure)
      http20Enabled: false
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      healthCheckPath: '/healthz'
      appSettings: [
        { name: 'WEBSITES_PORT', value: '8080' }
        { name: 'WEBSITES_ENABLE_APP_SERVICE_STORAGE', value: 'false' }
        // App Service waits 5 s after SIGTERM by default (max 120) before it kills the container:
        // give the gateway's drain its time (https://learn.microsoft.com/azure/app-service/reference-app-settings)
        { name: 'WEBSITES_CONTAINER_STOP_TIME_LIMIT', value: '40' }
        { name: 'AZHEXGATE_DRAIN_SECONDS', value: '30' }
        { name: 'AZHEXGATE_HOST', value: '0.0.0.0' }
        { name: 'AZHEXGATE_PORT', value: '8080' }
        { name: 'AZHEXGATE_BASE_DOMAIN', value: baseDomain }
        { name: 'AZHEXGATE_PUBLIC_SCHEME', value: 'https' }
        { name: 'AZHEXGATE_LOG_FORMAT', value: 'json' }
        { name: 'AZHEXGATE_REGISTRY', value: registryUrl }
        { name: 'AZHEXGATE_KEYVAULT_URL', value: keyVaultUrl }
        { name: 'AZHEXGATE_KEYVAULT_SECRET', value: apiKeysSecretName }
        { name: 'AZHEXGATE_API_ALLOW_CIDRS', value: apiAllowCidrs }
        { name: 'AZHEXGATE_TRUSTED_PROXIES', value: trustedProxies }
        { name: 'AZHEXGATE_RELAY_NAMESPACE', value: relayNamespace }
        { name: 'AZURE_SUBSCRIPTION_ID', value: subscription().subscriptionId }
        { name: 'AZURE_RESOURCE_GROUP', value: resourceGroup().name }
        { name: 'AZURE_CLIENT_ID', value: identityClientId }
        { name: 'AZHEXGATE_OIDC_ISSUER', value: oidcIssuer }
        { name: 'AZHEXGATE_OIDC_AUDIENCE', value: oidcAudience }
        { name: 'AZHEXGATE_OIDC_TENANTS', value: oidcTenants }
        { name: 'AZHEXGATE_OIDC_GROUPS', value: oidcGroups }
        { name: 'AZHEXGATE_OIDC_ADMIN_GROUP', value: oidcAdminGroup }
        { name: 'AZHEXGATE_OIDC_CLI_CLIENT_ID', value: oidcCliClientId }
        { name: 'AZHEXGATE_OIDC_CLI_SCOPES', value: oidcCliScopes }
        { name: 'AZHEXGATE_VISITOR_CLIENT_ID', value: visitorClientId }
        { name: 'AZHEXGATE_VISITOR_CLIENT_SECRET', value: visitorClientSecretRef }
        { name: 'AZHEXGATE_VISITOR_COOKIE_KEY', value: visitorCookieKeyRef }
        { name: 'AZHEXGATE_LIMIT_RATE', value: limitRate }
        { name: 'AZHEXGATE_LIMIT_RATE_MAX', value: limitRateMax }
        { name: 'AZHEXGATE_LIMIT_STREAMS', value: limitStreams }
        { name: 'AZHEXGATE_LIMIT_STREAMS_MAX', value: limitStreamsMax }
        { name: 'AZHEXGATE_LIMIT_BANDWIDTH', value: limitBandwidth }
        { name: 'AZHEXGATE_LIMIT_BANDWIDTH_MAX', value: limitBandwidthMax }
      ]
    }
  }
}

// no FTP / basic-auth deployment credentials: the image comes from a registry
resource ftpAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: { allow: false }
}

resource scmAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: { allow: false }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  scope: site
  name: 'gateway-logs'
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'AppServiceConsoleLogs', enabled: true }
      { category: 'AppServiceHTTPLogs', enabled: true }
      { category: 'AppServicePlatformLogs', enabled: true }
    ]
  }
}

output siteName string = site.name
output planId string = plan.id
output defaultHostName string = site.properties.defaultHostName
output customDomainVerificationId string = site.properties.customDomainVerificationId
// Returned by ARM but not part of the Bicep type of Microsoft.Web/sites (hence any()); used only
// for the optional apex A record.
output inboundIpAddress string = any(site.properties).inboundIpAddress

// The gateway: a Container App running the repository's Dockerfile image with the managed
// identity. App settings below are read by src/config.ts and src/control/settings.ts (a test
// keeps the names in sync).
param location string
param name string
param image string
param identityId string
param identityClientId string
param relayNamespace string
param baseDomain string
param keyVaultUrl string
param apiAllowCidrs string
param logAnalyticsCustomerId string
@secure()
param logAnalyticsSharedKey string
param appInsightsConnectionString string
@description('Tunnel registry: empty = SQLite on the replica (then keep one replica); redis://… (Azure Cache for Redis) to run several.')
param registry string = ''

resource env 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${name}-env'
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: { customerId: logAnalyticsCustomerId, sharedKey: logAnalyticsSharedKey }
    }
  }
}

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    managedEnvironmentId: env.id
    configuration: {
      ingress: { external: true, targetPort: 8080, transport: 'http', allowInsecure: false }
    }
    template: {
      containers: [
        {
          name: 'gateway'
          image: image
          resources: { cpu: json('1.0'), memory: '2Gi' }
          env: [
            { name: 'AZHEXGATE_RELAY_NAMESPACE', value: relayNamespace }
            { name: 'AZURE_SUBSCRIPTION_ID', value: subscription().subscriptionId }
            { name: 'AZURE_RESOURCE_GROUP', value: resourceGroup().name }
            { name: 'AZURE_CLIENT_ID', value: identityClientId }
            { name: 'AZHEXGATE_BASE_DOMAIN', value: baseDomain }
            { name: 'AZHEXGATE_PUBLIC_SCHEME', value: 'https' }
            { name: 'AZHEXGATE_HOST', value: '0.0.0.0' }
            { name: 'AZHEXGATE_PORT', value: '8080' }
            { name: 'AZHEXGATE_KEYVAULT_URL', value: keyVaultUrl }
            { name: 'AZHEXGATE_KEYVAULT_SECRET', value: 'azhexgate-api-keys' }
            { name: 'AZHEXGATE_API_ALLOW_CIDRS', value: apiAllowCidrs }
            { name: 'AZHEXGATE_LOG_FORMAT', value: 'json' }
            { name: 'AZHEXGATE_REGISTRY', value: empty(registry) ? 'sqlite:/data/registry.db' : registry }
            { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
          ]
          probes: [
            { type: 'Liveness', httpGet: { path: '/healthz', port: 8080 } }
            { type: 'Readiness', httpGet: { path: '/readyz', port: 8080 } }
          ]
        }
      ]
      // SQLite lives on one replica; with a Redis registry raise maxReplicas.
      scale: { minReplicas: 1, maxReplicas: empty(registry) ? 1 : 3 }
    }
  }
}

output fqdn string = app.properties.configuration.ingress.fqdn

// The tunnel registry: Azure Managed Redis (Microsoft.Cache/redisEnterprise), shared by every
// gateway instance, so tunnels survive restarts, new deployments and scale-out. (Azure Cache for
// Redis is being retired; Managed Redis is its successor.)
//  - clusteringPolicy NoCluster: src/registry/redis.ts runs multi-key Lua scripts whose keys are
//    built at run time, which a clustered database would reject (CROSSSLOT).
//  - evictionPolicy NoEviction: a registry must never lose keys to memory pressure.
//  - TLS only (clientProtocol Encrypted) on port 10000; access-key authentication, because the
//    gateway connects with a password in a `rediss://` URL (Bun's RedisClient has no Entra
//    token refresh). The URL is built in gateway.bicep from listKeys() on this database.
// https://learn.microsoft.com/azure/redis/overview
// https://learn.microsoft.com/azure/templates/microsoft.cache/redisenterprise/databases
param location string
param name string
@description('Managed Redis SKU; Balanced_B0 is the smallest.')
param skuName string = 'Balanced_B0'

resource cluster 'Microsoft.Cache/redisEnterprise@2025-07-01' = {
  name: name
  location: location
  sku: { name: skuName }
  properties: {
    minimumTlsVersion: '1.2'
    highAvailability: 'Enabled'
    publicNetworkAccess: 'Enabled'
  }
}

resource db 'Microsoft.Cache/redisEnterprise/databases@2025-07-01' = {
  parent: cluster
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    clusteringPolicy: 'NoCluster'
    evictionPolicy: 'NoEviction'
    accessKeysAuthentication: 'Enabled'
  }
}

output clusterName string = cluster.name
output hostName string = cluster.properties.hostName
output port int = 10000

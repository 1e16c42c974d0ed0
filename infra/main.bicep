// azhexgate on Azure: relay namespace, gateway container app with a managed identity,
// wildcard DNS, Key Vault for API keys, Log Analytics / Application Insights.
// Deploy: az deployment group create -g <rg> -f infra/main.bicep -p baseDomain=example.com image=<registry>/azhexgate:<tag>
targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Short prefix for resource names (letters and digits).')
@minLength(3)
@maxLength(12)
param prefix string = 'azhexgate'

@description('Public base domain; tunnels are {id}.{baseDomain}. A DNS zone with this name is created.')
param baseDomain string

@description('Container image of the gateway (built from the repository Dockerfile).')
param image string

@description('Management API: CIDR ranges allowed to call it (empty = any).')
param apiAllowCidrs string = ''

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
  params: { location: location, name: take('${prefix}kv${suffix}', 24), gatewayPrincipalId: identity.outputs.principalId }
}

module gateway 'modules/gateway.bicep' = {
  name: 'gateway'
  params: {
    location: location
    name: '${prefix}-gateway'
    image: image
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    relayNamespace: relay.outputs.namespaceName
    baseDomain: baseDomain
    keyVaultUrl: keyvault.outputs.vaultUrl
    apiAllowCidrs: apiAllowCidrs
    logAnalyticsCustomerId: monitoring.outputs.customerId
    logAnalyticsSharedKey: monitoring.outputs.sharedKey
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
  }
}

module dns 'modules/dns.bicep' = {
  name: 'dns'
  params: { zoneName: baseDomain, gatewayFqdn: gateway.outputs.fqdn }
}

output gatewayFqdn string = gateway.outputs.fqdn
output relayNamespace string = relay.outputs.namespaceName
output nameServers array = dns.outputs.nameServers

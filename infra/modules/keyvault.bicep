// Key Vault holding the management API keys (secret "azhexgate-api-keys", comma-separated).
param location string
param name string
param gatewayPrincipalId string

resource kv 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
  }
}

var secretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource read 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: kv
  name: guid(kv.id, gatewayPrincipalId, secretsUser)
  properties: {
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUser)
  }
}

output vaultUrl string = kv.properties.vaultUri

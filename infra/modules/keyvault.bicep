// Key Vault for the gateway's secrets: the management API keys (secret `azhexgate-api-keys`,
// comma or newline separated). RBAC mode. Only the gateway's identity reads it (Key Vault
// Secrets User); the TLS certificate lives in a separate vault (certvault.bicep) so that the
// App Service resource provider, which must read the certificate, cannot read these secrets.
//
// The API-keys secret is written by this deployment when `apiKeys` is given. Writing a secret
// through ARM (`Microsoft.KeyVault/vaults/secrets`) is a control-plane operation
// (`Microsoft.KeyVault/vaults/secrets/write`): the deployer needs Contributor (or Owner) on the
// resource group, no data-plane role. Reading it back, or rotating it with `az keyvault secret
// set`, is data plane: that is what `operatorPrincipalId` (Key Vault Secrets Officer) is for.
// https://learn.microsoft.com/azure/key-vault/secrets/quick-create-bicep
// https://learn.microsoft.com/azure/key-vault/general/rbac-guide
param location string
param name string
param gatewayPrincipalId string
@description('Object id of a user or group that may read and rotate the secrets (Key Vault Secrets Officer); empty = none.')
param operatorPrincipalId string = ''
param operatorPrincipalType string = 'User'
@secure()
@description('Management API keys, comma or newline separated; empty = leave the secret as it is (create it later).')
param apiKeys string = ''
param apiKeysSecretName string = 'azhexgate-api-keys'

resource kv 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
}

resource apiKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(apiKeys)) {
  parent: kv
  name: apiKeysSecretName
  properties: { value: apiKeys, contentType: 'azhexgate management API keys (comma or newline separated)' }
}

var secretsUser = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
var secretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer

resource read 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: kv
  name: guid(kv.id, gatewayPrincipalId, secretsUser)
  properties: {
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUser)
  }
}

resource operate 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  scope: kv
  name: guid(kv.id, operatorPrincipalId, secretsOfficer)
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficer)
  }
}

output name string = kv.name
output vaultUrl string = kv.properties.vaultUri
output apiKeysSecretName string = apiKeysSecretName

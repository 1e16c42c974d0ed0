// Key Vault for the TLS certificate of `*.{domain}` (and `api.{domain}` / the apex, when the
// certificate names them). App Service imports it from here (`Microsoft.Web/certificates` with
// keyVaultId + keyVaultSecretName) and re-syncs a renewed version within 24 hours.
//
// App Service reads the vault as its resource provider's service principal ("Microsoft Azure
// App Service", app id abfa0a7c-a6b6-4736-8310-5855508787cd in the public cloud), which needs
// Key Vault Certificate User on the vault. That role also reads every secret in the vault, hence
// a vault of its own that holds nothing else. Its object id is tenant-specific: pass it as
// `appServiceObjectId` (`az ad sp show --id abfa0a7c-a6b6-4736-8310-5855508787cd --query id -o tsv`).
// https://learn.microsoft.com/azure/app-service/configure-ssl-certificate#import-a-certificate-from-key-vault
param location string
param name string
@description('Object id of the App Service resource provider\'s service principal in this tenant; empty = grant it yourself.')
param appServiceObjectId string = ''
@description('Object id of a user or group that imports / renews the certificate (Key Vault Certificates Officer); empty = none.')
param operatorPrincipalId string = ''
param operatorPrincipalType string = 'User'

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

var certificateUser = 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba' // Key Vault Certificate User
var certificatesOfficer = 'a4417e6f-fecd-4de8-b567-7b0420556985' // Key Vault Certificates Officer

resource appService 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(appServiceObjectId)) {
  scope: kv
  name: guid(kv.id, appServiceObjectId, certificateUser)
  properties: {
    principalId: appServiceObjectId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', certificateUser)
  }
}

resource operate 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  scope: kv
  name: guid(kv.id, operatorPrincipalId, certificatesOfficer)
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', certificatesOfficer)
  }
}

output id string = kv.id
output name string = kv.name

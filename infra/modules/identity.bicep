// User-assigned managed identity of the gateway (Relay provisioning, listKeys, Key Vault).
param location string
param name string

resource id 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
}

output id string = id.id
output principalId string = id.properties.principalId
output clientId string = id.properties.clientId

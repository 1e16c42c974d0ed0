// Lets the gateway's identity pull the image from an existing private Azure Container Registry
// (AcrPull on that registry only). Deployed into the registry's resource group. App Service then
// pulls with `acrUseManagedIdentityCreds` + `acrUserManagedIdentityID` (gateway.bicep).
// https://learn.microsoft.com/azure/app-service/configure-custom-container#use-managed-identity-to-pull-image-from-azure-container-registry
param registryName string
param principalId string

resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d' // AcrPull

resource pull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: acr
  name: guid(acr.id, principalId, acrPull)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPull)
  }
}

output loginServer string = acr.properties.loginServer

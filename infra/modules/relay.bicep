// Azure Relay namespace. The gateway's identity may create / delete hybrid connections and list
// their keys (Contributor on the namespace) and connect as a sender (Azure Relay Sender).
param location string
param name string
param gatewayPrincipalId string

resource ns 'Microsoft.Relay/namespaces@2021-11-01' = {
  name: name
  location: location
  sku: { name: 'Standard', tier: 'Standard' }
}

var contributor = 'b24988ac-6180-42a0-ab88-20f7382dd24c'
var relaySender = '26baccc8-eea7-41f1-98f4-1762cc7f685d'

resource manage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: ns
  name: guid(ns.id, gatewayPrincipalId, contributor)
  properties: {
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contributor)
  }
}

resource send 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: ns
  name: guid(ns.id, gatewayPrincipalId, relaySender)
  properties: {
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', relaySender)
  }
}

output namespaceName string = ns.name

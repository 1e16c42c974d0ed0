// Azure Relay namespace. The gateway's identity creates / deletes `hc-*` hybrid connections,
// adds their Listen-only `azhexgate-listen` rule and reads its keys (ARM control plane), and
// connects as a sender (data plane). One built-in role covers both: Azure Relay Owner
// (actions and dataActions `Microsoft.Relay/*`), scoped to this namespace only. It is narrower
// than Contributor (no Microsoft.Resources / Microsoft.Insights / Microsoft.Support actions) and
// makes a separate Azure Relay Sender assignment redundant.
// Role ids: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/integration#azure-relay-owner
param location string
param name string
param gatewayPrincipalId string

resource ns 'Microsoft.Relay/namespaces@2021-11-01' = {
  name: name
  location: location
  sku: { name: 'Standard', tier: 'Standard' }
}

var relayOwner = '2787bf04-f1f5-4bfe-8383-c8a24483ee38' // Azure Relay Owner

resource manage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: ns
  name: guid(ns.id, gatewayPrincipalId, relayOwner)
  properties: {
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', relayOwner)
  }
}

output namespaceName string = ns.name

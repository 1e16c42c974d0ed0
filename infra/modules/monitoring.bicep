// Log Analytics workspace: the gateway's JSON log lines (App Service console logs), HTTP logs
// and platform logs land here through the site's diagnostic settings (gateway.bicep).
param location string
param name string

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: name
  location: location
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

output workspaceId string = logs.id

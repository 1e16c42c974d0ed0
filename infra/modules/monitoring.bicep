// Log Analytics workspace (container logs: the gateway writes JSON lines) and Application Insights.
param location string
param name string

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: name
  location: location
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

resource ai 'Microsoft.Insights/components@2020-02-02' = {
  name: '${name}-ai'
  location: location
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id }
}

output customerId string = logs.properties.customerId
#disable-next-line outputs-should-not-contain-secrets
output sharedKey string = logs.listKeys().primarySharedKey
output appInsightsConnectionString string = ai.properties.ConnectionString

// Public DNS zone for the base domain: the apex and every tunnel subdomain point at the gateway.
param zoneName string
param gatewayFqdn string

resource zone 'Microsoft.Network/dnsZones@2018-05-01' = {
  name: zoneName
  location: 'global'
}

resource wildcard 'Microsoft.Network/dnsZones/CNAME@2018-05-01' = {
  parent: zone
  name: '*'
  properties: { TTL: 300, CNAMERecord: { cname: gatewayFqdn } }
}

resource api 'Microsoft.Network/dnsZones/CNAME@2018-05-01' = {
  parent: zone
  name: 'api'
  properties: { TTL: 300, CNAMERecord: { cname: gatewayFqdn } }
}

output nameServers array = zone.properties.nameServers

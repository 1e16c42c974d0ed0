// Public DNS for the base domain (Azure DNS): where every name points, and the `asuid` TXT
// records App Service checks before it binds a custom hostname to the site (they prove the
// domain is yours and prevent subdomain takeover). For a wildcard binding App Service reads the
// TXT record `asuid.{domain}` — the same one the apex uses.
// https://learn.microsoft.com/azure/app-service/app-service-web-tutorial-custom-domain#2-create-the-dns-records
param zoneName string
@description('False when the zone is hosted elsewhere: create the records listed in the deployment output yourself.')
param createZone bool = true
param siteHostName string
param verificationId string
param bindApex bool = false
param apexIp string = ''

var ttl = 300

resource zone 'Microsoft.Network/dnsZones@2018-05-01' = if (createZone) {
  name: zoneName
  location: 'global'
}

// {id}.{domain} → the site
resource wildcard 'Microsoft.Network/dnsZones/CNAME@2018-05-01' = if (createZone) {
  parent: zone
  name: '*'
  properties: { TTL: ttl, CNAMERecord: { cname: siteHostName } }
}

// api.{domain} → the site (the management API host)
resource api 'Microsoft.Network/dnsZones/CNAME@2018-05-01' = if (createZone) {
  parent: zone
  name: 'api'
  properties: { TTL: ttl, CNAMERecord: { cname: siteHostName } }
}

// verification for *.{domain} and the apex
resource asuid 'Microsoft.Network/dnsZones/TXT@2018-05-01' = if (createZone) {
  parent: zone
  name: 'asuid'
  properties: { TTL: ttl, TXTRecords: [ { value: [ verificationId ] } ] }
}

// verification for api.{domain}
resource asuidApi 'Microsoft.Network/dnsZones/TXT@2018-05-01' = if (createZone) {
  parent: zone
  name: 'asuid.api'
  properties: { TTL: ttl, TXTRecords: [ { value: [ verificationId ] } ] }
}

// {domain} → the site's inbound address (a CNAME is not allowed at the apex)
resource apex 'Microsoft.Network/dnsZones/A@2018-05-01' = if (createZone && bindApex) {
  parent: zone
  name: '@'
  properties: { TTL: ttl, ARecords: [ { ipv4Address: apexIp } ] }
}

var records = concat([
  { type: 'CNAME', name: '*', value: siteHostName }
  { type: 'CNAME', name: 'api', value: siteHostName }
  { type: 'TXT', name: 'asuid', value: verificationId }
  { type: 'TXT', name: 'asuid.api', value: verificationId }
], bindApex ? [ { type: 'A', name: '@', value: apexIp } ] : [])

output nameServers array = createZone ? zone.properties.nameServers : []
output records array = records

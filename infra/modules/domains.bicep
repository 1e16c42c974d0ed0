// Custom hostnames with TLS (second deployment, once DNS is delegated and the certificate is in
// the certificate vault — docs/deploy.md):
//   *.{domain}   every tunnel ({id}.{domain}); App Service supports wildcard hostname bindings
//   api.{domain} the management API (also covered by the wildcard; bound on its own so the API
//                host keeps working whatever happens to the wildcard binding)
//   {domain}     the apex, only with bindApex (an A record to the app's inbound IP, which can
//                change — see docs/deploy.md — and a certificate that names the apex)
// The certificate is imported from Key Vault (App Service managed certificates do not cover
// wildcard names) and bound with SNI. Bindings are made one at a time: App Service rejects
// concurrent changes to one site's hostnames.
// https://learn.microsoft.com/azure/app-service/app-service-web-tutorial-custom-domain
// https://learn.microsoft.com/azure/app-service/configure-ssl-bindings
// https://learn.microsoft.com/azure/templates/microsoft.web/sites/hostnamebindings
param location string
param siteName string
param planId string
param baseDomain string
param bindApex bool
param certificateVaultId string
@description('Name of the certificate in the certificate vault (its secret has the same name).')
param certificateName string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource cert 'Microsoft.Web/certificates@2024-04-01' = {
  name: '${siteName}-${certificateName}'
  location: location
  properties: {
    keyVaultId: certificateVaultId
    keyVaultSecretName: certificateName
    serverFarmId: planId
  }
}

var hosts = concat([ '*.${baseDomain}', 'api.${baseDomain}' ], bindApex ? [ baseDomain ] : [])

@batchSize(1)
resource bindings 'Microsoft.Web/sites/hostNameBindings@2024-04-01' = [for host in hosts: {
  parent: site
  name: host
  properties: {
    siteName: siteName
    hostNameType: 'Verified'
    customHostNameDnsRecordType: host == baseDomain ? 'A' : 'CName'
    sslState: 'SniEnabled'
    thumbprint: cert.properties.thumbprint
  }
}]

output hostnames array = hosts
output certificateThumbprint string = cert.properties.thumbprint

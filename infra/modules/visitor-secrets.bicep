// Secrets of `start --entra` visitor sign-in in the app Key Vault (keyvault.bicep): the client
// secret of the gateway's confidential client and the key signing visitor sessions. The gateway's
// app settings point at them with Key Vault references (gateway.bicep). Written only when given;
// rotate with `az keyvault secret set` (then restart the app). docs/access.md.
param vaultName string
@secure()
@description('Client secret of the visitor sign-in app registration; empty = leave as it is.')
param visitorClientSecret string = ''
@secure()
@description('Key signing visitor sessions (32+ characters); empty = leave as it is.')
param visitorCookieKey string = ''

resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource clientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(visitorClientSecret)) {
  parent: kv
  name: 'azhexgate-visitor-client-secret'
  properties: { value: visitorClientSecret, contentType: 'azhexgate visitor sign-in client secret' }
}

resource cookieKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(visitorCookieKey)) {
  parent: kv
  name: 'azhexgate-visitor-cookie-key'
  properties: { value: visitorCookieKey, contentType: 'azhexgate visitor session signing key' }
}

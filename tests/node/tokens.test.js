// Refresh tokens (RFC 6749 §6, rotated on use, a replay revokes the family),
// client_credentials (§4.4) with private_key_jwt and client_secret_basic,
// introspection (RFC 7662) and revocation (RFC 7009), through openid-client's
// own grant, introspection and revocation functions.

import assert from 'node:assert/strict'
import { webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'

import * as oidc from 'openid-client'

import { codeFlow, rpConfig, startServer } from './support.js'

const eve = {
  email: 'eve@example.com',
  name: 'Eve Example',
  password: 'eve-password-1234',
  emailVerified: true,
}

function isOAuthError(code) {
  return (err) => {
    assert.ok(err instanceof oidc.ResponseBodyError, `a ResponseBodyError, got ${err?.name}: ${err?.message}`)
    assert.equal(err.error, code)
    return true
  }
}

describe('refresh, client credentials, introspection and revocation', () => {
  let server
  before(async () => {
    const pair = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
    const publicJwk = await webcrypto.subtle.exportKey('jwk', pair.publicKey)
    const redirect_uris = ['http://localhost:9999/cb']
    server = await startServer({
      clients: [
        {
          client_id: 'offline-app',
          redirect_uris,
          grant_types: ['authorization_code', 'refresh_token'],
          scopes: ['openid', 'profile', 'email', 'offline_access'],
        },
        {
          client_id: 'signed-machine',
          redirect_uris,
          token_endpoint_auth_method: 'private_key_jwt',
          grant_types: ['client_credentials'],
          scopes: ['profile'],
          jwks: { keys: [{ ...publicJwk, kid: 'node-key-1', alg: 'ES256', use: 'sig' }] },
          privateKey: { key: pair.privateKey, kid: 'node-key-1' },
        },
        {
          client_id: 'basic-machine',
          redirect_uris,
          grant_types: ['client_credentials'],
          scopes: ['profile', 'email'],
        },
      ],
      users: [eve],
    })
  })
  after(async () => {
    await server?.stop()
  })

  test('a refresh rotates the token, keeps auth_time and amr, and a replay of the old one revokes the new one', async () => {
    const flow = await codeFlow(server, 'offline-app', eve, { scope: 'openid email offline_access' })
    const first = flow.tokens.refresh_token
    assert.equal(typeof first, 'string', 'a refresh token for offline_access')

    const refreshed = await oidc.refreshTokenGrant(flow.config, first)
    assert.equal(typeof refreshed.refresh_token, 'string')
    assert.notEqual(refreshed.refresh_token, first, 'rotated on use')
    const claims = refreshed.claims()
    assert.equal(claims.sub, flow.claims.sub)
    assert.equal(claims.auth_time, flow.claims.auth_time, 'OIDC Core 12.2: the original auth_time')
    assert.deepEqual(claims.amr, ['pwd'])
    assert.equal(claims.nonce, undefined)
    const info = await oidc.fetchUserInfo(flow.config, refreshed.access_token, flow.claims.sub)
    assert.equal(info.email, eve.email)

    await assert.rejects(oidc.refreshTokenGrant(flow.config, first), isOAuthError('invalid_grant'))
    await assert.rejects(oidc.refreshTokenGrant(flow.config, refreshed.refresh_token), isOAuthError('invalid_grant'))
  })

  test('a refresh may narrow the scope but not widen it', async () => {
    const flow = await codeFlow(server, 'offline-app', eve, { scope: 'openid email offline_access' })
    await assert.rejects(
      oidc.refreshTokenGrant(flow.config, flow.tokens.refresh_token, { scope: 'openid profile' }),
      isOAuthError('invalid_scope'),
    )
    const narrowed = await oidc.refreshTokenGrant(flow.config, flow.tokens.refresh_token, { scope: 'openid' })
    assert.equal(narrowed.scope, 'openid')
  })

  test('private_key_jwt client_credentials, then introspection and revocation with the same method', async () => {
    const config = await rpConfig(server, 'signed-machine')
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'profile' })
    assert.equal(typeof tokens.access_token, 'string')
    assert.equal(tokens.refresh_token, undefined, 'RFC 6749 §4.4.3: no refresh token')
    assert.equal(tokens.id_token, undefined)

    const active = await oidc.tokenIntrospection(config, tokens.access_token)
    assert.equal(active.active, true)
    assert.equal(active.sub, 'signed-machine')
    assert.equal(active.client_id, 'signed-machine')
    assert.equal(active.scope, 'profile')

    await oidc.tokenRevocation(config, tokens.access_token, { token_type_hint: 'access_token' })
    const revoked = await oidc.tokenIntrospection(config, tokens.access_token)
    assert.deepEqual(revoked, { active: false })
  })

  test('client_credentials with a secret, and scopes beyond the client’s are refused', async () => {
    const config = await rpConfig(server, 'basic-machine')
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'email' })
    assert.equal(tokens.scope, 'email')
    await assert.rejects(oidc.clientCredentialsGrant(config, { scope: 'openid' }), isOAuthError('invalid_scope'))

    const offline = await rpConfig(server, 'offline-app')
    await assert.rejects(oidc.clientCredentialsGrant(offline), isOAuthError('unauthorized_client'))
  })
})

// OpenID Connect Discovery 1.0, seen through openid-client.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import * as oidc from 'openid-client'

import { randomSecret, startServer } from './support.js'

describe('discovery', () => {
  let server
  before(async () => {
    server = await startServer({
      clients: [
        {
          client_id: 'web',
          redirect_uris: ['http://localhost:9999/cb'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
    })
  })
  after(async () => {
    await server?.stop()
  })

  test('openid-client discovers the issuer and the metadata has every field OIDC Discovery requires', async () => {
    const config = await oidc.discovery(
      new URL(server.issuer),
      'web',
      server.clients.web.secret,
      oidc.ClientSecretBasic(server.clients.web.secret),
      { execute: [oidc.allowInsecureRequests] },
    )
    const md = config.serverMetadata()

    // issuer must be exactly the URL it was discovered from (openid-client
    // also checks this itself).
    assert.equal(md.issuer, server.issuer)

    // REQUIRED (Discovery 1.0 §3).
    for (const key of [
      'authorization_endpoint',
      'token_endpoint',
      'jwks_uri',
    ]) {
      assert.equal(typeof md[key], 'string', `${key} is a string`)
      const u = new URL(md[key])
      assert.equal(u.origin, server.issuer, `${key} is on the issuer's origin`)
    }
    assert.ok(Array.isArray(md.response_types_supported), 'response_types_supported is an array')
    assert.ok(md.response_types_supported.includes('code'), 'response_types_supported has code')
    assert.ok(Array.isArray(md.subject_types_supported) && md.subject_types_supported.length > 0)
    for (const t of md.subject_types_supported) assert.ok(['public', 'pairwise'].includes(t), `subject type ${t}`)
    assert.ok(
      Array.isArray(md.id_token_signing_alg_values_supported) &&
        md.id_token_signing_alg_values_supported.includes('RS256'),
      'id_token_signing_alg_values_supported includes RS256',
    )
    assert.ok(!md.id_token_signing_alg_values_supported.includes('none'), 'alg none is not offered')

    // RECOMMENDED ones the server provides, and what they must say.
    assert.equal(new URL(md.userinfo_endpoint).origin, server.issuer)
    assert.ok(md.scopes_supported.includes('openid'), 'scopes_supported includes openid')
    assert.ok(Array.isArray(md.claims_supported))
    for (const claim of ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'acr', 'amr', 'azp', 'sid']) {
      assert.ok(md.claims_supported.includes(claim), `claims_supported has ${claim}`)
    }

    // What this product promises: PKCE S256, the three client auth methods,
    // the iss authorization response parameter (RFC 9207).
    assert.ok(config.serverMetadata().supportsPKCE(), 'supportsPKCE() (S256)')
    assert.deepEqual(md.code_challenge_methods_supported, ['S256'])
    for (const m of ['client_secret_basic', 'client_secret_post', 'none']) {
      assert.ok(md.token_endpoint_auth_methods_supported.includes(m), `auth method ${m}`)
    }
    assert.equal(md.authorization_response_iss_parameter_supported, true)
    if (md.grant_types_supported) assert.ok(md.grant_types_supported.includes('authorization_code'))
    if (md.response_modes_supported) assert.ok(md.response_modes_supported.includes('query'))
  })

  test('the discovery document is served as JSON at the well-known path, without cookies', async () => {
    const res = await fetch(`${server.issuer}/.well-known/openid-configuration`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/)
    assert.deepEqual(res.headers.getSetCookie(), [])
    const body = await res.json()
    assert.equal(body.issuer, server.issuer)
  })

  test('the JWKS has a public key for every advertised ID token alg and no private parts', async () => {
    const config = await oidc.discovery(new URL(server.issuer), 'web', randomSecret(), undefined, {
      execute: [oidc.allowInsecureRequests],
    })
    const md = config.serverMetadata()
    const res = await fetch(md.jwks_uri)
    assert.equal(res.status, 200)
    const { keys } = await res.json()
    assert.ok(Array.isArray(keys) && keys.length > 0)
    for (const alg of md.id_token_signing_alg_values_supported) {
      assert.ok(keys.some((k) => k.alg === alg && k.kid), `a key with alg ${alg} and a kid`)
    }
    const kids = keys.map((k) => k.kid)
    assert.equal(new Set(kids).size, kids.length, 'kids are unique')
    for (const k of keys) {
      for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) {
        assert.equal(k[priv], undefined, `key ${k.kid} has no private member ${priv}`)
      }
      if (k.use !== undefined) assert.equal(k.use, 'sig')
    }
  })
})

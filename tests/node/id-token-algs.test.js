// ID tokens signed with ES256 and EdDSA (Ed25519), verified by openid-client
// against the server's JWKS.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import * as oidc from 'openid-client'

import { assertIdTokenClaims, codeFlow, rpConfig, signIn, startServer } from './support.js'

const carol = {
  email: 'carol@example.com',
  name: 'Carol Example',
  password: 'carol-password-123',
  emailVerified: true,
}

describe('ID token signing algorithms', () => {
  let server
  before(async () => {
    server = await startServer({
      clients: [
        {
          client_id: 'es256-app',
          redirect_uris: ['http://localhost:9999/cb'],
          token_endpoint_auth_method: 'client_secret_basic',
          id_token_signed_response_alg: 'ES256',
        },
        {
          client_id: 'eddsa-app',
          redirect_uris: ['http://localhost:9999/cb'],
          token_endpoint_auth_method: 'client_secret_post',
          id_token_signed_response_alg: 'EdDSA',
        },
        {
          client_id: 'eddsa-public-app',
          redirect_uris: ['http://localhost:9999/cb'],
          token_endpoint_auth_method: 'none',
          id_token_signed_response_alg: 'EdDSA',
        },
      ],
      users: [carol],
    })
  })
  after(async () => {
    await server?.stop()
  })

  for (const clientId of ['es256-app', 'eddsa-app', 'eddsa-public-app']) {
    test(`${clientId}: the ID token is signed with the client's alg and openid-client verifies it against the JWKS`, async () => {
      const flow = await codeFlow(server, clientId, carol)
      await assertIdTokenClaims(assert, server, clientId, flow)
      const userinfo = await oidc.fetchUserInfo(flow.config, flow.tokens.access_token, flow.claims.sub)
      assert.equal(userinfo.sub, flow.claims.sub)
      assert.equal(userinfo.email, carol.email)
      assert.equal(userinfo.name, carol.name)
    })
  }

  // Guards the other tests: proves that the signature check they rely on is
  // really switched on, by breaking the signature on its way to the client.
  for (const clientId of ['es256-app', 'eddsa-app']) {
    test(`${clientId}: openid-client rejects the ID token when its signature is altered (the check is real)`, async () => {
      const config = await rpConfig(server, clientId)
      const tokenEndpoint = config.serverMetadata().token_endpoint
      let tampered = false
      config[oidc.customFetch] = async (url, options) => {
        const res = await fetch(url, options)
        if (String(url) !== tokenEndpoint || res.status !== 200) return res
        const body = await res.json()
        const [h, p, s] = body.id_token.split('.')
        const sig = Buffer.from(s, 'base64url')
        sig[5] ^= 0x01
        body.id_token = [h, p, sig.toString('base64url')].join('.')
        tampered = true
        return new Response(JSON.stringify(body), { status: 200, headers: res.headers })
      }
      const verifier = oidc.randomPKCECodeVerifier()
      const state = oidc.randomState()
      const nonce = oidc.randomNonce()
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: server.clients[clientId].redirect_uris[0],
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      })
      const { callbackUrl } = await signIn(url, { username: carol.email, password: carol.password })
      await assert.rejects(
        oidc.authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: verifier,
          expectedState: state,
          expectedNonce: nonce,
        }),
        (err) => {
          assert.equal(err.code, 'OAUTH_INVALID_RESPONSE')
          assert.match(String(err.cause?.message), /signature verification failed/i)
          return true
        },
      )
      assert.ok(tampered, 'the token response went through the tampering fetch')
    })
  }
})

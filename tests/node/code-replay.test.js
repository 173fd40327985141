// An authorization code is good for one redemption only (RFC 6749 §4.1.2):
// a second one fails, and the tokens from the first are revoked.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import * as oidc from 'openid-client'

import { codeFlow, followToClient, rpConfig, signIn, startServer } from './support.js'

const dave = {
  email: 'dave@example.com',
  name: 'Dave Example',
  password: 'dave-password-123',
  emailVerified: true,
}

function isInvalidGrant(err) {
  assert.ok(err instanceof oidc.ResponseBodyError, `a ResponseBodyError, got ${err?.name}: ${err?.message}`)
  assert.equal(err.error, 'invalid_grant')
  assert.equal(err.status, 400)
  return true
}

async function rawUserinfo(config, accessToken) {
  const res = await fetch(config.serverMetadata().userinfo_endpoint, {
    headers: { authorization: `Bearer ${accessToken}` },
  })
  return { status: res.status, wwwAuthenticate: res.headers.get('www-authenticate'), body: await res.text() }
}

describe('authorization code replay', () => {
  let server
  before(async () => {
    server = await startServer({
      clients: [
        {
          client_id: 'basic-app',
          redirect_uris: ['http://localhost:9999/cb'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
        {
          client_id: 'public-app',
          redirect_uris: ['http://localhost:9999/cb'],
          token_endpoint_auth_method: 'none',
        },
      ],
      users: [dave],
    })
  })
  after(async () => {
    await server?.stop()
  })

  for (const clientId of ['basic-app', 'public-app']) {
    test(`${clientId}: a second redemption of the same code fails with invalid_grant and the first access token is then refused by userinfo`, async () => {
      const flow = await codeFlow(server, clientId, dave)

      // The access token works before the replay.
      const userinfo = await oidc.fetchUserInfo(flow.config, flow.tokens.access_token, flow.claims.sub)
      assert.equal(userinfo.sub, flow.claims.sub)

      await assert.rejects(oidc.authorizationCodeGrant(flow.config, flow.callbackUrl, flow.checks), isInvalidGrant)

      // ...and not after it.
      await assert.rejects(
        oidc.fetchUserInfo(flow.config, flow.tokens.access_token, flow.claims.sub),
        (err) => {
          assert.ok(
            err instanceof oidc.WWWAuthenticateChallengeError,
            `a WWW-Authenticate challenge, got ${err?.name}: ${err?.message}`,
          )
          assert.equal(err.status, 401)
          const [challenge] = err.cause
          assert.equal(challenge.scheme, 'bearer')
          assert.equal(challenge.parameters.error, 'invalid_token')
          return true
        },
      )
      const raw = await rawUserinfo(flow.config, flow.tokens.access_token)
      assert.equal(raw.status, 401, `userinfo with a revoked token: ${JSON.stringify(raw)}`)
      assert.match(raw.wwwAuthenticate ?? '', /^Bearer\b.*error="invalid_token"/)
    })
  }

  test('a code redeemed with the wrong PKCE code_verifier fails with invalid_grant', async () => {
    const config = await rpConfig(server, 'public-app')
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const nonce = oidc.randomNonce()
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: 'http://localhost:9999/cb',
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    })
    const { callbackUrl } = await signIn(url, { username: dave.email, password: dave.password })
    await assert.rejects(
      oidc.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: oidc.randomPKCECodeVerifier(),
        expectedState: state,
        expectedNonce: nonce,
      }),
      isInvalidGrant,
    )
  })

  test('a code issued to one client cannot be redeemed by another', async () => {
    const publicConfig = await rpConfig(server, 'public-app')
    const basicConfig = await rpConfig(server, 'basic-app')
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const nonce = oidc.randomNonce()
    const url = oidc.buildAuthorizationUrl(publicConfig, {
      redirect_uri: 'http://localhost:9999/cb',
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    })
    const { callbackUrl } = await signIn(url, { username: dave.email, password: dave.password })
    await assert.rejects(
      oidc.authorizationCodeGrant(basicConfig, callbackUrl, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
      }),
      isInvalidGrant,
    )
  })

  // A race, so it is tried on many codes: the window between the winner
  // taking the code and recording what it issued is short. One password
  // sign-in, then each code comes from the session (single sign-on).
  test('concurrent redemptions of one code: at most one succeeds, and no token from it stays usable', async () => {
    const config = await rpConfig(server, 'basic-app')
    const ROUNDS = 60
    const CONCURRENT = 4
    let jar
    for (let round = 1; round <= ROUNDS; round++) {
      const verifier = oidc.randomPKCECodeVerifier()
      const state = oidc.randomState()
      const nonce = oidc.randomNonce()
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: 'http://localhost:9999/cb',
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      })
      let callbackUrl
      if (jar === undefined) {
        ;({ callbackUrl, jar } = await signIn(url, { username: dave.email, password: dave.password }))
      } else {
        callbackUrl = await followToClient(jar, url)
      }
      assert.ok(callbackUrl.searchParams.get('code'), `round ${round}: a code (${callbackUrl})`)
      const checks = { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }
      const results = await Promise.allSettled(
        Array.from({ length: CONCURRENT }, () => oidc.authorizationCodeGrant(config, callbackUrl, checks)),
      )
      const ok = results.filter((r) => r.status === 'fulfilled')
      assert.ok(ok.length <= 1, `round ${round}: ${ok.length} of ${CONCURRENT} concurrent redemptions succeeded`)
      for (const r of results.filter((r) => r.status === 'rejected')) isInvalidGrant(r.reason)
      // The code was replayed, so whatever was issued for it must be dead.
      for (const r of ok) {
        const raw = await rawUserinfo(config, r.value.access_token)
        assert.equal(
          raw.status,
          401,
          `round ${round}: the access token from a code that was replayed ${CONCURRENT - 1} times ` +
            `still works at userinfo: ${JSON.stringify(raw)}`,
        )
      }
    }
  })
})

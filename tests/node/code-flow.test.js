// The authorization code flow with PKCE, for each way a client can
// authenticate at the token endpoint, with openid-client as the relying party.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import * as oidc from 'openid-client'

import { assertIdTokenClaims, codeFlow, startServer } from './support.js'

const alice = {
  email: 'alice@example.com',
  name: 'Alice Example',
  password: 'correct horse battery staple',
  emailVerified: true,
}
const bob = {
  email: 'bob@example.com',
  name: 'Bob Example',
  password: 'another-long-password',
  emailVerified: false,
}

describe('authorization code flow', () => {
  let server
  before(async () => {
    server = await startServer({
      clients: [
        {
          client_id: 'basic-app',
          redirect_uris: ['http://localhost:9999/cb'],
          token_endpoint_auth_method: 'client_secret_basic',
          id_token_signed_response_alg: 'RS256',
        },
        {
          client_id: 'post-app',
          redirect_uris: ['http://localhost:9998/callback'],
          token_endpoint_auth_method: 'client_secret_post',
        },
        {
          client_id: 'public-app',
          redirect_uris: ['http://127.0.0.1:9997/cb'],
          token_endpoint_auth_method: 'none',
        },
      ],
      users: [alice, bob],
    })
  })
  after(async () => {
    await server?.stop()
  })

  test('a client_secret_basic client gets a valid ID token with amr, acr, auth_time, sid and azp, and userinfo returns the user', async () => {
    const flow = await codeFlow(server, 'basic-app', alice)
    await assertIdTokenClaims(assert, server, 'basic-app', flow)

    const userinfo = await oidc.fetchUserInfo(flow.config, flow.tokens.access_token, flow.claims.sub)
    assert.equal(userinfo.sub, flow.claims.sub)
    assert.equal(userinfo.email, alice.email)
    assert.equal(userinfo.email_verified, true)
    assert.equal(userinfo.name, alice.name)
  })

  test('a client_secret_post client gets a valid ID token and userinfo returns the user', async () => {
    const flow = await codeFlow(server, 'post-app', bob)
    await assertIdTokenClaims(assert, server, 'post-app', flow)

    const userinfo = await oidc.fetchUserInfo(flow.config, flow.tokens.access_token, flow.claims.sub)
    assert.equal(userinfo.sub, flow.claims.sub)
    assert.equal(userinfo.email, bob.email)
    assert.equal(userinfo.email_verified, false)
    assert.equal(userinfo.name, bob.name)
  })

  test('a public client (auth method none) with PKCE gets a valid ID token and userinfo returns the user', async () => {
    const flow = await codeFlow(server, 'public-app', alice)
    await assertIdTokenClaims(assert, server, 'public-app', flow)

    const userinfo = await oidc.fetchUserInfo(flow.config, flow.tokens.access_token, flow.claims.sub)
    assert.equal(userinfo.sub, flow.claims.sub)
    assert.equal(userinfo.email, alice.email)
    assert.equal(userinfo.email_verified, true)
    assert.equal(userinfo.name, alice.name)
  })

  test('userinfo releases only the claims of the scopes granted: openid alone gives sub and nothing else', async () => {
    const flow = await codeFlow(server, 'basic-app', alice, { scope: 'openid' })
    await assertIdTokenClaims(assert, server, 'basic-app', flow)
    const userinfo = await oidc.fetchUserInfo(flow.config, flow.tokens.access_token, flow.claims.sub)
    assert.equal(userinfo.sub, flow.claims.sub)
    for (const claim of ['name', 'email', 'email_verified']) {
      assert.equal(userinfo[claim], undefined, `no ${claim} without its scope`)
    }
  })

  test('the subject is public: one user has the same sub at two clients, and two users have different subs', async () => {
    const atBasic = await codeFlow(server, 'basic-app', alice)
    const atPost = await codeFlow(server, 'post-app', alice)
    const bobAtBasic = await codeFlow(server, 'basic-app', bob)
    assert.equal(atBasic.claims.sub, atPost.claims.sub)
    assert.notEqual(atBasic.claims.sub, bobAtBasic.claims.sub)
  })

  test('two sign-ins give different sids, access tokens and codes', async () => {
    const one = await codeFlow(server, 'public-app', alice)
    const two = await codeFlow(server, 'public-app', alice)
    assert.notEqual(one.callbackUrl.searchParams.get('code'), two.callbackUrl.searchParams.get('code'))
    assert.notEqual(one.tokens.access_token, two.tokens.access_token)
    assert.notEqual(one.claims.sid, two.claims.sid)
  })
})

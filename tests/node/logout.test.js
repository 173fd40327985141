// RP-initiated logout 1.0 driven by openid-client: the relying party builds
// the end-session URL from discovery with `buildEndSessionUrl`, and the
// browser comes back to the registered URI with the relying party's state.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import * as oidc from 'openid-client'

import { browserFetch, codeFlow, followToClient, locationOf, parseLoginForm, startServer } from './support.js'

const alice = {
  email: 'alice@example.com',
  name: 'Alice Example',
  password: 'correct horse battery staple',
}
const CALLBACK = 'http://localhost:9999/cb'
const GOODBYE = 'http://localhost:9999/signed-out'

describe('RP-initiated logout', () => {
  let server
  before(async () => {
    server = await startServer({
      clients: [
        {
          client_id: 'app',
          redirect_uris: [CALLBACK],
          post_logout_redirect_uris: [GOODBYE],
        },
      ],
      users: [alice],
    })
  })
  after(async () => {
    await server?.stop()
  })

  /** Asks for a silent sign-in; returns what the library makes of the answer. */
  async function silentSignIn(config, jar) {
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: CALLBACK,
      scope: 'openid',
      prompt: 'none',
      state,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    })
    const callback = await followToClient(jar, url)
    return oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
    })
  }

  test('the end-session URL with id_token_hint signs the user out and returns to the registered URI with state', async () => {
    const flow = await codeFlow(server, 'app', alice)
    // Signed in: a silent sign-in succeeds.
    const silent = await silentSignIn(flow.config, flow.jar)
    assert.equal(silent.claims().sub, flow.claims.sub)

    const state = oidc.randomState()
    const url = oidc.buildEndSessionUrl(flow.config, {
      id_token_hint: flow.tokens.id_token,
      post_logout_redirect_uri: GOODBYE,
      state,
    })
    assert.equal(`${url.origin}${url.pathname}`, `${server.issuer}/session/end`)
    const back = await followToClient(flow.jar, url)
    assert.equal(`${back.origin}${back.pathname}`, GOODBYE)
    assert.equal(back.searchParams.get('state'), state)

    // Signed out: the same silent sign-in now fails with login_required.
    await assert.rejects(silentSignIn(flow.config, flow.jar), (err) => {
      assert.equal(err.error, 'login_required')
      return true
    })
  })

  test('an unregistered post_logout_redirect_uri is not followed and the session stays', async () => {
    const flow = await codeFlow(server, 'app', alice)
    const url = oidc.buildEndSessionUrl(flow.config, {
      id_token_hint: flow.tokens.id_token,
      post_logout_redirect_uri: 'http://localhost:9999/elsewhere',
      state: oidc.randomState(),
    })
    const response = await browserFetch(flow.jar, url)
    const page = await response.text()
    assert.equal(response.status, 400)
    assert.equal(response.headers.get('location'), null, 'no redirect at all')
    assert.match(page, /<html/i)
    assert.doesNotMatch(page, /localhost:9999\/elsewhere/)
    const silent = await silentSignIn(flow.config, flow.jar)
    assert.equal(silent.claims().sub, flow.claims.sub)
  })

  test('without id_token_hint a confirmation page asks first; confirming signs out and returns with state', async () => {
    const flow = await codeFlow(server, 'app', alice)
    const state = oidc.randomState()
    const url = oidc.buildEndSessionUrl(flow.config, { post_logout_redirect_uri: GOODBYE, state })
    const response = await browserFetch(flow.jar, url)
    const page = await response.text()
    assert.equal(response.status, 200)
    // Still signed in until the person confirms.
    await silentSignIn(flow.config, flow.jar)

    const form = parseLoginForm(page)
    assert.ok(form.hidden.csrf, 'the form carries a CSRF token')
    const confirmed = await browserFetch(flow.jar, new URL(form.action, url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form.hidden).toString(),
    })
    assert.equal(confirmed.status, 303, await confirmed.text())
    const back = locationOf(confirmed, url)
    assert.equal(`${back.origin}${back.pathname}`, GOODBYE)
    assert.equal(back.searchParams.get('state'), state)
    await assert.rejects(silentSignIn(flow.config, flow.jar), (err) => err.error === 'login_required')
  })
})

// A failed sign-in must not lead to an authorization code.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import * as oidc from 'openid-client'

import {
  CookieJar,
  assertIdTokenClaims,
  browserFetch,
  openSignIn,
  parseLoginForm,
  rpConfig,
  startServer,
  submitSignIn,
} from './support.js'

const erin = {
  email: 'erin@example.com',
  name: 'Erin Example',
  password: 'erin-password-123',
  emailVerified: true,
}
const REDIRECT_URI = 'http://localhost:9999/cb'
const INCORRECT = 'Incorrect email or password.'

describe('wrong password', () => {
  let server
  let config
  before(async () => {
    server = await startServer({
      clients: [
        {
          client_id: 'basic-app',
          redirect_uris: [REDIRECT_URI],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      users: [erin],
    })
    config = await rpConfig(server, 'basic-app')
  })
  after(async () => {
    await server?.stop()
  })

  async function authorizationRequest() {
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const nonce = oidc.randomNonce()
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid profile email',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    })
    return { url, checks: { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce } }
  }

  /** Asserts a sign-in answer is the re-rendered form and grants nothing. */
  function assertRefused(response, text, jar) {
    assert.equal(response.status, 200, 'the form is shown again')
    assert.equal(response.headers.get('location'), null, 'no redirect')
    assert.ok(text.includes(INCORRECT), `the page says "${INCORRECT}"`)
    assert.ok(!jar.has('zid_session'), 'no session cookie')
    assert.doesNotMatch(text, /[?&]code=/, 'no code in the page')
    const again = parseLoginForm(text)
    assert.equal(again.action, '/login')
    assert.ok(again.hidden.tx && again.hidden.csrf, 'the form still has tx and csrf')
  }

  /**
   * Walks on to /authorize/continue as a browser that skipped the password
   * step would, and asserts that it is not sent to the client with a code.
   */
  async function assertNoCodeFromContinue(ctx) {
    const authz = ctx.loginUrl.searchParams.get('authz')
    assert.ok(authz, 'the login URL carries authz')
    const url = new URL(`/authorize/continue?authz=${encodeURIComponent(authz)}`, server.issuer)
    const res = await browserFetch(ctx.jar, url)
    await res.text()
    const loc = res.headers.get('location')
    if (loc !== null) {
      const target = new URL(loc, url)
      assert.equal(target.origin, server.issuer, `not sent to the client: ${res.status} ${loc}`)
      assert.equal(target.searchParams.get('code'), null, 'no code')
    }
  }

  test('a wrong password re-renders the form with "Incorrect email or password." and issues no code', async () => {
    const { url } = await authorizationRequest()
    const ctx = await openSignIn(url)
    assert.ok(ctx.jar.has('zid_login'), 'the login page set zid_login')
    const { response, text } = await submitSignIn(ctx, { username: erin.email, password: 'not-erins-password' })
    assertRefused(response, text, ctx.jar)
    await assertNoCodeFromContinue(ctx)
  })

  test('an unknown email gets the very same answer as a wrong password and issues no code', async () => {
    const { url } = await authorizationRequest()
    const ctx = await openSignIn(url)
    const { response, text } = await submitSignIn(ctx, { username: 'nobody@example.com', password: erin.password })
    assertRefused(response, text, ctx.jar)
    await assertNoCodeFromContinue(ctx)

    // The page for a known email with a wrong password, for comparison: the
    // two differ only in the echoed email and the per-form tokens.
    const known = await openSignIn((await authorizationRequest()).url)
    const wrong = await submitSignIn(known, { username: erin.email, password: 'not-erins-password' })
    assert.equal(wrong.response.status, response.status)
    const normalize = (html, email) =>
      html.replaceAll(email, 'EMAIL').replace(/(name="(?:tx|csrf)" value=")[^"]*"/g, '$1X"')
    assert.equal(normalize(text, 'nobody@example.com'), normalize(wrong.text, erin.email))
  })

  test('an empty password is refused and issues no code', async () => {
    const { url } = await authorizationRequest()
    const ctx = await openSignIn(url)
    const { response, text } = await submitSignIn(ctx, { username: erin.email, password: '' })
    assert.notEqual(response.status, 303, 'no redirect onwards')
    assert.ok(!ctx.jar.has('zid_session'), 'no session cookie')
    assert.doesNotMatch(text, /[?&]code=/)
    await assertNoCodeFromContinue(ctx)
  })

  test('after a wrong password, the right one on the re-rendered form completes the flow', async () => {
    const { url, checks } = await authorizationRequest()
    const ctx = await openSignIn(url)
    const first = await submitSignIn(ctx, { username: erin.email, password: 'wrong-password!' })
    assertRefused(first.response, first.text, ctx.jar)

    const retry = { ...ctx, form: parseLoginForm(first.text) }
    const second = await submitSignIn(retry, { username: erin.email, password: erin.password })
    assert.equal(second.response.status, 303, `signed in: ${second.text}`)
    assert.ok(ctx.jar.has('zid_session'), 'now a session cookie')
    const cont = new URL(second.response.headers.get('location'), server.issuer)
    assert.equal(cont.pathname, '/authorize/continue')
    const res = await browserFetch(ctx.jar, cont)
    assert.equal(res.status, 303)
    const callbackUrl = new URL(res.headers.get('location'))
    assert.equal(callbackUrl.origin + callbackUrl.pathname, REDIRECT_URI)

    const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, checks)
    await assertIdTokenClaims(assert, server, 'basic-app', {
      config,
      tokens,
      claims: tokens.claims(),
      callbackUrl,
      nonce: checks.expectedNonce,
      state: checks.expectedState,
    })
  })

  test('a sign-in POST with a forged csrf token, or without the login cookie, issues no session and no code', async () => {
    // Forged csrf, right password.
    {
      const { url } = await authorizationRequest()
      const ctx = await openSignIn(url)
      const forged = { ...ctx, form: { ...ctx.form, hidden: { ...ctx.form.hidden, csrf: 'A'.repeat(43) } } }
      const { response, text } = await submitSignIn(forged, { username: erin.email, password: erin.password })
      assert.notEqual(response.status, 303, `forged csrf was accepted: ${response.headers.get('location')}`)
      assert.ok(!ctx.jar.has('zid_session'), 'no session cookie')
      assert.doesNotMatch(text, /[?&]code=/)
      await assertNoCodeFromContinue(ctx)
    }
    // No zid_login cookie, right password.
    {
      const { url } = await authorizationRequest()
      const ctx = await openSignIn(url)
      const bare = { ...ctx, jar: new CookieJar() }
      const { response, text } = await submitSignIn(bare, { username: erin.email, password: erin.password })
      assert.notEqual(response.status, 303, `sign-in without the login cookie was accepted: ${response.headers.get('location')}`)
      assert.ok(!bare.jar.has('zid_session'), 'no session cookie')
      assert.doesNotMatch(text, /[?&]code=/)
    }
  })
})

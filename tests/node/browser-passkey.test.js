// Passkeys in a real browser: Debian's Chromium through playwright-core,
// with Chromium's own virtual WebAuthn authenticator (CTAP2, internal
// transport, resident keys, user verification) attached over CDP. The
// relying party is openid-client; its redirect URI is a small HTTP server
// on 127.0.0.1 started here.
//
// One person with one device through the whole file: register a passkey in
// the security area, sign in with it through the relying party (by autofill
// and by the button), use it as the second step after a password, remove it.
// The tests run in order and build on each other. Each sign-in runs in a
// fresh browser profile whose virtual authenticator holds a copy of the
// device's credential (private key and signature counter), copied back
// afterwards, so the device stays one device.
//
// The file skips itself when /usr/bin/chromium is missing.

import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import * as oidc from 'openid-client'
import { chromium } from 'playwright-core'

import {
  CHROMIUM,
  DESKTOP,
  HAVE_CHROMIUM,
  LAUNCH_ARGS,
  NO_CHROMIUM,
  STEP_TIMEOUT_MS,
  assertAccessible,
  expectPage,
  screenshotDir,
  startClientSite,
} from './browser.js'
import { rpConfig, startServer } from './support.js'

const CLIENT_ID = 'example-app'
const CLIENT_NAME = 'Example App'
// The same app, configured to demand a second factor.
const STRICT_ID = 'strict-app'

const erin = {
  email: 'erin@example.com',
  name: 'Erin Example',
  password: 'erin-likes-her-passkey',
  emailVerified: true,
}

describe('passkeys in the browser (Chromium, virtual authenticator)', { skip: !HAVE_CHROMIUM && NO_CHROMIUM }, () => {
  let server
  let clientSite
  let redirectUri
  let configs
  let browser
  let shotDir
  // The security-area browser, signed in with the password.
  let home
  // The device's credential, as the authenticator last left it.
  let device

  before(async () => {
    shotDir = await screenshotDir()
    console.log(`screenshots: ${shotDir}`)
    clientSite = await startClientSite()
    redirectUri = `http://localhost:${clientSite.address().port}/cb`
    // Password-only sign-in is allowed by the server's policy here, so that
    // the passkey is the user's first extra method; the strict client still
    // demands a second factor.
    server = await startServer({
      clients: [
        { client_id: CLIENT_ID, name: CLIENT_NAME, redirect_uris: [redirectUri] },
        { client_id: STRICT_ID, name: CLIENT_NAME, redirect_uris: [redirectUri], require_2fa: true },
      ],
      users: [erin],
    })
    configs = {
      [CLIENT_ID]: await rpConfig(server, CLIENT_ID),
      [STRICT_ID]: await rpConfig(server, STRICT_ID),
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS })
    home = await openBrowser({})
  })

  after(async () => {
    await home?.ctx.close().catch(() => {})
    await browser?.close()
    await server?.stop()
    clientSite?.closeAllConnections()
    await new Promise((resolve) => (clientSite ? clientSite.close(resolve) : resolve()))
  })

  /**
   * A fresh profile with a virtual authenticator (CTAP2, internal, resident
   * keys, user verification), holding `credential` if given. `autofill:
   * false` makes the browser report no conditional mediation, as browsers
   * without passkey autofill do, so the button is the way in.
   */
  async function openBrowser({ credential, autofill = true }) {
    const ctx = await browser.newContext({ viewport: DESKTOP, locale: 'en-US' })
    ctx.setDefaultTimeout(STEP_TIMEOUT_MS)
    if (!autofill) {
      await ctx.addInitScript(() => {
        PublicKeyCredential.isConditionalMediationAvailable = async () => false
      })
    }
    const page = await ctx.newPage()
    page.on('pageerror', (e) => console.log(`browser error: ${e}`))
    const cdp = await ctx.newCDPSession(page)
    await cdp.send('WebAuthn.enable')
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    })
    if (credential) await cdp.send('WebAuthn.addCredential', { authenticatorId, credential })
    const credentials = async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials
    return { ctx, page, credentials }
  }

  /** Runs `fn(page)` in a fresh profile holding the device's credential. */
  async function withDevice(options, fn) {
    const b = await openBrowser({ ...options, credential: device })
    try {
      return await fn(b.page)
    } finally {
      const [latest] = await b.credentials()
      if (latest) device = latest
      await b.ctx.close()
    }
  }

  async function screenshot(page, name) {
    await page.screenshot({ path: path.join(shotDir, name), fullPage: true })
  }

  async function authorizationRequest(clientId) {
    const codeVerifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const nonce = oidc.randomNonce()
    const url = oidc.buildAuthorizationUrl(configs[clientId], {
      redirect_uri: redirectUri,
      scope: 'openid email',
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    })
    return { url: url.href, clientId, checks: { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce } }
  }

  /** Waits to be back at the app, redeems the code, returns the ID token claims. */
  async function tokensAtClient(page, request) {
    await page.waitForURL((u) => u.href.startsWith(`${redirectUri}?`))
    const tokens = await oidc.authorizationCodeGrant(configs[request.clientId], new URL(page.url()), request.checks)
    const claims = tokens.claims()
    assert.equal(claims.iss, server.issuer)
    assert.equal(claims.nonce, request.checks.expectedNonce)
    assert.ok(claims.auth_time >= Math.floor(Date.now() / 1000) - 120, 'auth_time is this sign-in')
    const userinfo = await oidc.fetchUserInfo(configs[request.clientId], tokens.access_token, claims.sub)
    assert.equal(userinfo.email, erin.email)
    return claims
  }

  async function passwordStep(page) {
    await expectPage(page, 'Sign in')
    await page.getByLabel('Email address').fill(erin.email)
    await page.getByLabel('Password', { exact: true }).fill(erin.password)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  }

  async function passkeyNames(page) {
    return page.locator('ul.passkeys li strong').allTextContents()
  }

  test('register a passkey in the security area: the browser prompt, a name, the list shows it as added and never used', async () => {
    const { page } = home
    await page.goto(`${server.issuer}/account/security`)
    await passwordStep(page)
    await expectPage(page, 'Security')
    await page.getByText('No passkeys yet.').waitFor()
    await assertAccessible(page, 'security area without passkeys')
    await screenshot(page, 'passkey-01-security-none.png')

    await page.getByLabel('Passkey name (optional)').fill('Test laptop')
    await page.getByRole('button', { name: 'Register a passkey' }).click()
    await page.getByText('The passkey is registered and ready for your next login.').waitFor()
    assert.deepEqual(await passkeyNames(page), ['Test laptop'])
    const item = page.locator('ul.passkeys li').first()
    assert.match(await item.innerText(), /This device only/, 'a virtual internal authenticator is not backup eligible')
    assert.match(await item.innerText(), /not used yet/)
    await page.getByRole('cell', { name: 'Passkey registered' }).first().waitFor()
    await assertAccessible(page, 'security area with a passkey')
    await screenshot(page, 'passkey-02-security-registered.png')

    const stored = await home.credentials()
    assert.equal(stored.length, 1, 'the authenticator holds one credential')
    assert.equal(stored[0].isResidentCredential, true, 'the credential is discoverable')
    assert.equal(stored[0].rpId, 'localhost')
    device = stored[0]
  })

  test('the same authenticator cannot be registered twice (excludeCredentials)', async () => {
    const { page } = home
    await page.getByText('Register a new passkey').click()
    await page.getByRole('button', { name: 'Register a passkey' }).click()
    await page.getByText('This passkey is already registered to your account.').waitFor()
    assert.deepEqual(await passkeyNames(page), ['Test laptop'], 'still one passkey')
    assert.equal((await home.credentials()).length, 1, 'the authenticator made no second credential')
  })

  test('sign in through the relying party by picking the passkey from the username field (conditional UI): amr ["hwk","user","mfa"], acr "phr"', async () => {
    await withDevice({}, async (page) => {
      const request = await authorizationRequest(CLIENT_ID)
      const asked = page.waitForRequest((r) => r.url().endsWith('/login/passkey/options'))
      // The autofill can sign in before the page could be inspected, so the
      // field is checked in the sign-in page as it arrived.
      const signin = await page.goto(request.url)
      assert.match(await signin.text(), /name="username"[^>]*autocomplete="username webauthn"|autocomplete="username webauthn"[^>]*name="username"/s)
      await asked
      // Chromium's virtual authenticator with automatic presence picks the
      // offered passkey itself, as a person does from the autofill list.
      const claims = await tokensAtClient(page, request)
      assert.deepEqual(claims.amr, ['hwk', 'user', 'mfa'])
      assert.equal(claims.acr, 'phr')
    })
  })

  test('sign in with the "Sign in with a passkey" button where the browser has no autofill for passkeys', async () => {
    await withDevice({ autofill: false }, async (page) => {
      const request = await authorizationRequest(CLIENT_ID)
      await page.goto(request.url)
      await expectPage(page, 'Sign in')
      const button = page.getByRole('button', { name: 'Sign in with a passkey' })
      await button.waitFor()
      await assertAccessible(page, 'sign-in page with passkey')
      await screenshot(page, 'passkey-03-signin.png')
      await button.click()
      const claims = await tokensAtClient(page, request)
      assert.deepEqual(claims.amr, ['hwk', 'user', 'mfa'])
      assert.equal(claims.acr, 'phr')
    })
    const { page } = home
    await page.goto(`${server.issuer}/account/security`)
    assert.match(await page.locator('ul.passkeys li').first().innerText(), /last used/, 'the list shows the passkey was used')
    await page.getByRole('cell', { name: 'Signed in with a passkey' }).first().waitFor()
  })

  test('a client that demands two factors: password, then the passkey as the second step: amr ["pwd","hwk","user","mfa"], acr "phr"', async () => {
    await withDevice({ autofill: false }, async (page) => {
      const request = await authorizationRequest(STRICT_ID)
      await page.goto(request.url)
      await passwordStep(page)
      await expectPage(page, 'Confirm with your passkey')
      assert.equal(await page.getByLabel('6-digit code from the app').count(), 0, 'no TOTP form: the user has no TOTP')
      await assertAccessible(page, 'passkey second step')
      await screenshot(page, 'passkey-04-second-step.png')
      await page.getByRole('button', { name: 'Use your passkey' }).click()
      const claims = await tokensAtClient(page, request)
      assert.deepEqual(claims.amr, ['pwd', 'hwk', 'user', 'mfa'])
      assert.equal(claims.acr, 'phr')
    })
  })

  test('remove the passkey after a confirmation page; the device still has it, but it no longer signs in', async () => {
    const { page } = home
    await page.goto(`${server.issuer}/account/security`)
    await expectPage(page, 'Security')
    await page.getByRole('button', { name: 'Remove passkey Test laptop' }).click()
    await expectPage(page, 'Remove this passkey?')
    await assertAccessible(page, 'remove confirmation')
    await screenshot(page, 'passkey-05-remove-confirm.png')
    await page.getByRole('button', { name: 'Remove passkey' }).click()
    await page.getByText('The passkey was removed.').waitFor()
    assert.deepEqual(await passkeyNames(page), [])
    await page.getByRole('cell', { name: 'Passkey removed' }).first().waitFor()

    await withDevice({ autofill: false }, async (p) => {
      await p.goto(`${server.issuer}/login`)
      await p.getByRole('button', { name: 'Sign in with a passkey' }).click()
      await p.getByText('This passkey is not registered here.').waitFor()
      await expectPage(p, 'Sign in')
      await screenshot(p, 'passkey-06-signin-removed.png')
    })
  })

  test('without JavaScript the sign-in page says passkeys need it, and the password still signs in', async () => {
    const plain = await browser.newContext({ javaScriptEnabled: false, viewport: DESKTOP, locale: 'en-US' })
    try {
      const p = await plain.newPage()
      const request = await authorizationRequest(CLIENT_ID)
      await p.goto(request.url)
      await screenshot(p, 'passkey-07-signin-nojs.png')
      await p.getByText('Passkey sign-in needs JavaScript. You can sign in with your password.').waitFor()
      assert.equal(await p.getByRole('button', { name: 'Sign in with a passkey' }).count(), 0, 'no dead button')
      await passwordStep(p)
      await p.waitForURL((u) => u.href.startsWith(`${redirectUri}?`))
      const tokens = await oidc.authorizationCodeGrant(configs[CLIENT_ID], new URL(p.url()), request.checks)
      assert.deepEqual(tokens.claims().amr, ['pwd'])
    } finally {
      await plain.close()
    }
  })
})

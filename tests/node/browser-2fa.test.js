// Two-factor enrolment and sign-in in a real browser: Debian's Chromium,
// driven by npm playwright-core, against the real zapini-id binary with the
// product default (every sign-in needs a second factor).
//
// The authenticator app is Debian's `oathtool`, fed the secret read from the
// enrolment page's otpauth:// link. The relying party is openid-client; its
// redirect URI is a tiny HTTP server on 127.0.0.1 started here, so the
// browser really lands there and the test reads the code from its address.
//
// Every page on the way is saved as a full-page screenshot in $SCREENSHOT_DIR
// (default: a fresh temporary folder, printed at the start), and checked for
// a few accessibility facts: html[lang] set, one h1, every input labelled.
//
// The file skips itself when /usr/bin/chromium is missing; Playwright never
// downloads a browser of its own.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'

import * as oidc from 'openid-client'
import { chromium } from 'playwright-core'

import {
  CHROMIUM,
  DESKTOP,
  HAVE_CHROMIUM,
  LAUNCH_ARGS,
  NO_CHROMIUM,
  PHONE,
  STEP_TIMEOUT_MS,
  assertAccessible,
  expectPage,
  markScriptless,
  screenshotDir,
  startClientSite,
} from './browser.js'
import { decodeJwt, rpConfig, startServer } from './support.js'

const TOTP_PERIOD = 30

const CLIENT_ID = 'example-app'
const CLIENT_NAME = 'Example App'
const RECOVERY_CODE = /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/

const alice = {
  email: 'alice@example.com',
  name: 'Alice Example',
  password: 'correct horse battery staple',
  emailVerified: true,
}
// Signs in with JavaScript turned off throughout.
const carol = {
  email: 'carol@example.com',
  name: 'Carol Example',
  password: 'carol-has-no-javascript',
  emailVerified: true,
}
// Only gets as far as the enrolment page, on a phone-sized screen.
const dave = {
  email: 'dave@example.com',
  name: 'Dave Example',
  password: 'dave-uses-a-small-phone',
  emailVerified: true,
}

const run = promisify(execFile)

/** The 6-digit TOTP code oathtool computes for a base32 secret at a Unix time. */
async function oathtool(secret, unixTime) {
  const { stdout } = await run('oathtool', ['--totp', '-b', '-N', `@${unixTime}`, secret])
  const code = stdout.trim()
  assert.match(code, /^\d{6}$/, `oathtool printed a 6-digit code, not ${JSON.stringify(stdout)}`)
  return code
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The phone app: hands out a code for a time step never used before (the
 * server accepts each step once, and one step of skew either way), waiting
 * for the clock when the next unused step is not acceptable yet.
 */
class Authenticator {
  constructor(secret) {
    this.secret = secret
    this.lastStep = -Infinity
  }

  async code() {
    for (;;) {
      const nowStep = Math.floor(Date.now() / 1000 / TOTP_PERIOD)
      const step = Math.max(this.lastStep + 1, nowStep)
      if (step <= nowStep + 1) {
        this.lastStep = step
        return oathtool(this.secret, step * TOTP_PERIOD + 1)
      }
      await sleep((nowStep + 1) * TOTP_PERIOD * 1000 - Date.now() + 250)
    }
  }

  /** A 6-digit code that is none of the acceptable ones right now. */
  async wrongCode() {
    const nowStep = Math.floor(Date.now() / 1000 / TOTP_PERIOD)
    const valid = new Set()
    for (let s = nowStep - 2; s <= nowStep + 2; s++) valid.add(await oathtool(this.secret, s * TOTP_PERIOD + 1))
    for (let n = 123456; ; n = (n + 1) % 1_000_000) {
      const code = String(n).padStart(6, '0')
      if (!valid.has(code)) return code
    }
  }
}


describe('two-factor authentication in the browser (Chromium)', () => {
  let server
  let clientSite
  let redirectUri
  let config
  let browser
  let shotDir
  const contexts = []
  // What the user keeps after enrolling: the phone app and the saved codes.
  const wallet = new Map()

  before(async () => {
    if (!HAVE_CHROMIUM) return
    shotDir = await screenshotDir()
    console.log(`screenshots: ${shotDir}`)

    clientSite = await startClientSite()
    redirectUri = `http://localhost:${clientSite.address().port}/cb`
    server = await startServer({
      productDefault2fa: true,
      clients: [
        {
          client_id: CLIENT_ID,
          name: CLIENT_NAME,
          redirect_uris: [redirectUri],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      users: [alice, carol, dave],
    })
    config = await rpConfig(server, CLIENT_ID)
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS })
  })

  after(async () => {
    for (const ctx of contexts) await ctx.close().catch(() => {})
    await browser?.close()
    await server?.stop()
    clientSite?.closeAllConnections()
    await new Promise((resolve) => (clientSite ? clientSite.close(resolve) : resolve()))
    if (shotDir) console.log(`screenshots: ${shotDir}`)
  })

  /** A fresh browser profile (no cookies), English, desktop-sized by default. */
  async function newContext({ javaScriptEnabled = true, viewport = DESKTOP, colorScheme = 'light' } = {}) {
    const ctx = await browser.newContext({ javaScriptEnabled, viewport, colorScheme, locale: 'en-US' })
    ctx.setDefaultTimeout(STEP_TIMEOUT_MS)
    contexts.push(ctx)
    const page = await ctx.newPage()
    if (!javaScriptEnabled) markScriptless(page)
    return { ctx, page }
  }

  async function screenshot(page, name) {
    await page.screenshot({ path: path.join(shotDir, name), fullPage: true })
  }



  /** A fresh authorization request (PKCE, state, nonce) for the example app. */
  async function authorizationRequest() {
    const codeVerifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const nonce = oidc.randomNonce()
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile email',
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    })
    return { url, state, checks: { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce } }
  }

  /** The sign-in page: checks it, optionally saves it, enters the password. */
  async function passwordStep(page, user, { shot, forClient = true } = {}) {
    await expectPage(page, 'Sign in')
    if (forClient) await page.getByText(`to continue to ${CLIENT_NAME}`).waitFor()
    const email = page.getByLabel('Email address')
    const password = page.getByLabel('Password', { exact: true })
    assert.equal(await email.getAttribute('name'), 'username')
    assert.equal(await email.getAttribute('autocomplete'), 'username webauthn')
    assert.equal(await password.getAttribute('name'), 'password')
    assert.equal(await password.getAttribute('type'), 'password')
    assert.equal(await password.getAttribute('autocomplete'), 'current-password')
    await assertAccessible(page, 'sign-in page')
    if (shot) await screenshot(page, shot)
    await email.fill(user.email)
    await password.fill(user.password)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  }

  /** Waits until the browser is back at the example app; returns that URL. */
  async function backAtClient(page, state) {
    await page.waitForURL((u) => u.href.startsWith(`${redirectUri}?`))
    await page.getByRole('heading', { name: 'Back at Example App' }).waitFor()
    const url = new URL(page.url())
    assert.ok(url.searchParams.get('code'), 'the redirect carries a code')
    assert.equal(url.searchParams.get('state'), state, 'the redirect carries the state')
    assert.equal(url.searchParams.get('iss'), server.issuer, 'the redirect names the issuer (RFC 9207)')
    assert.equal(url.searchParams.get('error'), null)
    return url
  }

  /** Redeems the code with openid-client and checks the two-factor claims. */
  async function assertMfaTokens(callbackUrl, checks, user) {
    const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, checks)
    const claims = tokens.claims()
    assert.deepEqual(claims.amr, ['pwd', 'otp', 'mfa'], 'amr is ["pwd","otp","mfa"]')
    assert.equal(claims.acr, 'mfa', 'acr is "mfa"')
    assert.equal(claims.iss, server.issuer)
    assert.equal(claims.aud, CLIENT_ID)
    assert.equal(claims.nonce, checks.expectedNonce)
    assert.equal(typeof claims.auth_time, 'number')
    assert.ok(claims.auth_time >= Math.floor(Date.now() / 1000) - 120, 'auth_time is this sign-in')
    assert.deepEqual(decodeJwt(tokens.id_token).payload.amr, ['pwd', 'otp', 'mfa'])
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub)
    assert.equal(userinfo.email, user.email)
    return claims
  }

  /**
   * The enrolment page during sign-in up to the recovery codes: reads the
   * secret, checks a wrong code is refused, confirms with oathtool's code.
   * Returns { app, codes } and leaves the browser on the recovery codes page.
   */
  async function enrol(page, user, { javaScript, shots = {} }) {
    await expectPage(page, 'Turn on two-factor authentication')
    await page.getByText('Your account needs two-factor authentication before you can continue').waitFor()

    const qr = page.locator('figure.qr svg')
    assert.equal(await qr.count(), 1, 'one inline SVG QR code')
    assert.ok(await qr.isVisible(), 'the QR code is visible')
    const box = await qr.boundingBox()
    assert.ok(box.width >= 150 && box.height >= 150, `the QR code is big enough to scan (${box.width}x${box.height})`)
    assert.ok(Math.abs(box.width - box.height) < 1, 'the QR code is square')
    assert.ok(await page.getByRole('img', { name: 'QR Code to add this account to an authenticator app' }).isVisible())

    // The manual key is folded away until asked for.
    const secretText = page.locator('#totp-secret')
    assert.equal(await secretText.isVisible(), false, 'the manual key starts folded away')
    const code = page.getByLabel('6-digit code from the app')
    assert.equal(await code.getAttribute('name'), 'code')
    assert.equal(await code.getAttribute('autocomplete'), 'one-time-code')
    assert.equal(await code.getAttribute('inputmode'), 'numeric')
    await assertAccessible(page, 'enrolment page')
    if (shots.page) await screenshot(page, shots.page)
    if (shots.phone) {
      await page.setViewportSize(PHONE)
      await screenshot(page, shots.phone)
      await page.setViewportSize(DESKTOP)
    }

    await page.getByText("Can't scan the code?").click()
    assert.ok(await secretText.isVisible(), 'the manual key shows after a click on "Can\'t scan the code?"')
    const link = page.locator('a[href^="otpauth://"]')
    assert.equal(await link.count(), 1, 'one otpauth:// link')
    const otpauth = new URL(await link.getAttribute('href'))
    assert.equal(otpauth.protocol, 'otpauth:')
    assert.equal(otpauth.host, 'totp')
    const label = decodeURIComponent(otpauth.pathname.replace(/^\//, ''))
    assert.ok(label.includes(user.email), `the account label names the user (${label})`)
    assert.equal(otpauth.searchParams.get('issuer'), 'Zapini ID')
    for (const [param, value] of [['algorithm', 'SHA1'], ['digits', '6'], ['period', '30']]) {
      const got = otpauth.searchParams.get(param)
      assert.ok(got === null || got === value, `${param} is ${value} or left to the default (got ${got})`)
    }
    const secret = otpauth.searchParams.get('secret')
    assert.match(secret, /^[A-Z2-7]+=*$/, 'the secret is base32')
    assert.ok(secret.replace(/=+$/, '').length >= 26, 'the secret has at least 128 bits')
    assert.equal(
      (await secretText.textContent()).replace(/[\s-]/g, '').toUpperCase(),
      secret.replace(/=+$/, ''),
      'the key shown as text is the one in the link',
    )
    if (shots.key) await screenshot(page, shots.key)

    const app = new Authenticator(secret)

    // A wrong code is refused, with the field marked invalid.
    await code.fill(await app.wrongCode())
    await page.getByRole('button', { name: 'Confirm and turn on' }).click()
    const alert = page.getByRole('alert')
    await alert.waitFor()
    assert.match(await alert.textContent(), /That code does not match/)
    await expectPage(page, 'Turn on two-factor authentication')
    assert.equal(await page.getByLabel('6-digit code from the app').getAttribute('aria-invalid'), 'true')
    if (shots.wrong) await screenshot(page, shots.wrong)

    // The same secret is still on the page after the error.
    const again = new URL(await page.locator('a[href^="otpauth://"]').getAttribute('href'))
    assert.equal(again.searchParams.get('secret'), secret, 'the secret does not change after a wrong code')

    await page.getByLabel('6-digit code from the app').fill(await app.code())
    await page.getByRole('button', { name: 'Confirm and turn on' }).click()

    await expectPage(page, 'Save your recovery codes')
    await page.getByText('Two-factor authentication is on.').waitFor()
    const codes = await page.locator('ul#recovery-codes li code').allTextContents()
    assert.equal(codes.length, 10, 'ten recovery codes')
    assert.equal(new Set(codes).size, 10, 'all different')
    for (const c of codes) assert.match(c, RECOVERY_CODE)

    const download = page.getByRole('link', { name: 'Download' })
    assert.equal(await download.getAttribute('download'), 'recovery-codes.txt')
    const href = await download.getAttribute('href')
    assert.match(href, /^data:text\/plain/)
    const body = decodeURIComponent(href.slice(href.indexOf(',') + 1))
    assert.deepEqual(body.split('\n').filter(Boolean), codes, 'the download holds the same ten codes')

    // The "Copy" button is the page's only script: shown with JavaScript
    // (and a clipboard), hidden without, which also proves the setting took.
    const copy = page.getByRole('button', { name: 'Copy' })
    assert.equal(await copy.isVisible(), javaScript, `the Copy button is ${javaScript ? 'shown' : 'hidden'}`)
    await assertAccessible(page, 'recovery codes page')
    if (shots.codes) await screenshot(page, shots.codes)
    return { app, codes }
  }

  /** The "Two-factor authentication" step: checks the page, optionally saves it. */
  async function expectTotpStep(page, shot) {
    await expectPage(page, 'Two-factor authentication')
    const code = page.getByLabel('6-digit code')
    assert.equal(await code.getAttribute('name'), 'code')
    assert.equal(await code.getAttribute('inputmode'), 'numeric')
    assert.equal(await code.getAttribute('autocomplete'), 'one-time-code')
    assert.ok(await page.getByRole('link', { name: 'Lost your phone? Use a recovery code instead' }).isVisible())
    await assertAccessible(page, 'two-factor step')
    if (shot) await screenshot(page, shot)
    return code
  }

  /** From the TOTP step, via the link, to the recovery step, and through it. */
  async function recoveryStep(page, recoveryCode, shot) {
    await page.getByRole('link', { name: 'Lost your phone? Use a recovery code instead' }).click()
    await expectPage(page, 'Use a recovery code')
    const field = page.getByLabel('Recovery code')
    assert.equal(await field.getAttribute('name'), 'code')
    assert.ok(await page.getByRole('link', { name: 'Use the authenticator app instead' }).isVisible())
    await assertAccessible(page, 'recovery step')
    if (shot) await screenshot(page, shot)
    await field.fill(recoveryCode)
    await page.getByRole('button', { name: 'Verify' }).click()
  }

  /** Facts of the security area the browser is on. */
  async function securityArea(page) {
    await expectPage(page, 'Security')
    const twoFactor = page.locator('section[aria-labelledby=h-2fa]')
    const sessions = page.locator('section[aria-labelledby=h-sessions] ul > li')
    return {
      signedInAs: await page.locator('p.lead').textContent(),
      twoFactor: (await twoFactor.innerText()).replace(/\s+/g, ' '),
      badge: await twoFactor.locator('.badge').textContent(),
      codes: (await page.locator('section[aria-labelledby=h-codes]').innerText()).replace(/\s+/g, ' '),
      sessions: await sessions.count(),
      current: await sessions.filter({ has: page.getByText('This session', { exact: true }) }).count(),
      signOutButtons: await sessions.getByRole('button', { name: 'Sign out this session' }).count(),
      events: await page.locator('table.events tbody tr td:first-child').allTextContents(),
    }
  }

  function skipWithoutChromium(t) {
    if (HAVE_CHROMIUM) return false
    t.skip(NO_CHROMIUM)
    return true
  }

  test('enrolment in the browser: sign in, scan, confirm, see 10 recovery codes, land at the client; the ID token says amr ["pwd","otp","mfa"] and acr "mfa"', async (t) => {
    if (skipWithoutChromium(t)) return
    const { page } = await newContext()
    const request = await authorizationRequest()
    await page.goto(request.url.href)
    await passwordStep(page, alice, { shot: '01-sign-in.png' })
    const enrolled = await enrol(page, alice, {
      javaScript: true,
      shots: {
        page: '02-enrolment.png',
        phone: '02-enrolment-phone-390x844.png',
        key: '02-enrolment-manual-key.png',
        wrong: '02-enrolment-wrong-code.png',
        codes: '03-recovery-codes.png',
      },
    })
    wallet.set(alice.email, enrolled)

    await page.getByRole('button', { name: 'I have saved my codes' }).click()
    const callbackUrl = await backAtClient(page, request.state)
    await assertMfaTokens(callbackUrl, request.checks, alice)
  })

  test('a second sign-in in a fresh browser asks for the password and then an authenticator code, and a recovery code via "Lost your phone?" works too', async (t) => {
    if (skipWithoutChromium(t)) return
    const enrolled = wallet.get(alice.email)
    assert.ok(enrolled, 'alice enrolled in the previous test')

    // Password, then TOTP; a wrong code first.
    {
      const { page } = await newContext()
      const request = await authorizationRequest()
      await page.goto(request.url.href)
      await passwordStep(page, alice)
      const code = await expectTotpStep(page, '04-totp-step.png')
      await code.fill(await enrolled.app.wrongCode())
      await page.getByRole('button', { name: 'Verify' }).click()
      const alert = page.getByRole('alert')
      await alert.waitFor()
      assert.equal(
        await alert.textContent(),
        'That code is not valid. Enter the current code from your authenticator app.',
      )
      await expectPage(page, 'Two-factor authentication')
      assert.equal(await page.getByLabel('6-digit code').getAttribute('aria-invalid'), 'true')
      await screenshot(page, '04-totp-wrong-code.png')

      await page.getByLabel('6-digit code').fill(await enrolled.app.code())
      await page.getByRole('button', { name: 'Verify' }).click()
      const callbackUrl = await backAtClient(page, request.state)
      await assertMfaTokens(callbackUrl, request.checks, alice)
    }

    // Password, then a recovery code through the link.
    {
      const { page } = await newContext()
      const request = await authorizationRequest()
      await page.goto(request.url.href)
      await passwordStep(page, alice)
      await expectTotpStep(page)
      await recoveryStep(page, enrolled.codes[0], '05-recovery-step.png')
      const callbackUrl = await backAtClient(page, request.state)
      await assertMfaTokens(callbackUrl, request.checks, alice)
      enrolled.recoveryPage = page
    }
  })

  test('with JavaScript turned off, enrolment, the TOTP sign-in and a recovery-code sign-in all work end to end', async (t) => {
    if (skipWithoutChromium(t)) return

    // Enrolment, during a sign-in for the example app.
    let enrolled
    {
      const { page } = await newContext({ javaScriptEnabled: false })
      const request = await authorizationRequest()
      await page.goto(request.url.href)
      await passwordStep(page, carol, { shot: 'nojs-01-sign-in.png' })
      enrolled = await enrol(page, carol, {
        javaScript: false,
        shots: { page: 'nojs-02-enrolment.png', codes: 'nojs-03-recovery-codes.png' },
      })
      await page.getByRole('button', { name: 'I have saved my codes' }).click()
      const callbackUrl = await backAtClient(page, request.state)
      await assertMfaTokens(callbackUrl, request.checks, carol)
    }

    // Password and TOTP in a fresh browser, for the example app.
    {
      const { page } = await newContext({ javaScriptEnabled: false })
      const request = await authorizationRequest()
      await page.goto(request.url.href)
      await passwordStep(page, carol)
      const code = await expectTotpStep(page, 'nojs-04-totp-step.png')
      await code.fill(await enrolled.app.code())
      await page.getByRole('button', { name: 'Verify' }).click()
      const callbackUrl = await backAtClient(page, request.state)
      await assertMfaTokens(callbackUrl, request.checks, carol)
    }

    // Straight to /login, no app asking: password, recovery code, and the
    // security area.
    {
      const { page } = await newContext({ javaScriptEnabled: false })
      await page.goto(`${server.issuer}/login`)
      await passwordStep(page, carol, { forClient: false })
      await expectTotpStep(page)
      await recoveryStep(page, enrolled.codes[9], 'nojs-05-recovery-step.png')
      await page.waitForURL(`${server.issuer}/account/security`)
      const area = await securityArea(page)
      assert.equal(area.signedInAs, `Signed in as ${carol.email}`)
      assert.equal(area.badge, 'On')
      assert.match(area.codes, /9 of 10 recovery codes left\./)
      await screenshot(page, 'nojs-06-security-area.png')
    }
  })

  test('the security area shows 2FA on, "9 of 10 recovery codes left" after one recovery code was used, the sessions with "Sign out this session", and the security events', async (t) => {
    if (skipWithoutChromium(t)) return
    const enrolled = wallet.get(alice.email)
    const page = enrolled?.recoveryPage
    assert.ok(page, 'alice signed in with a recovery code in the previous test')

    await page.goto(`${server.issuer}/account/security`)
    const area = await securityArea(page)
    assert.equal(area.signedInAs, `Signed in as ${alice.email}`)
    assert.equal(area.badge, 'On')
    assert.match(area.twoFactor, /An authenticator app generates your codes/)
    assert.match(area.codes, /9 of 10 recovery codes left\./)
    // One session per browser alice signed in with: enrolment, TOTP, recovery code.
    assert.equal(area.sessions, 3, 'three sessions')
    assert.equal(area.current, 1, 'one of them is marked "This session"')
    assert.equal(area.signOutButtons, 3, 'each has "Sign out this session"')
    for (const event of ['Two-factor authentication turned on', 'Signed in', 'Recovery code used', 'Failed sign-in attempt']) {
      assert.ok(area.events.includes(event), `the events list "${event}" (got ${JSON.stringify(area.events)})`)
    }
    await assertAccessible(page, 'security area')
    await screenshot(page, '06-security-area.png')

    // Signing out another session leaves two, and this one still signed in.
    const others = page
      .locator('section[aria-labelledby=h-sessions] ul > li')
      .filter({ hasNot: page.getByText('This session', { exact: true }) })
    await others.first().getByRole('button', { name: 'Sign out this session' }).click()
    await page.getByText('The session was signed out.').waitFor()
    const afterSignOut = await securityArea(page)
    assert.equal(afterSignOut.sessions, 2)
    assert.equal(afterSignOut.current, 1)
  })

  /** Asserts the page does not scroll sideways on the phone screen. */
  async function assertFitsPhone(page, what) {
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(scrollWidth <= PHONE.width, `${what}: the page is no wider than the screen (${scrollWidth} px > ${PHONE.width} px)`)
  }

  test('on a 390x844 phone screen the enrolment page, the recovery codes and the security area fit without sideways scrolling', async (t) => {
    if (skipWithoutChromium(t)) return

    // Dark mode first, only as far as the enrolment page (saved for review).
    {
      const { page } = await newContext({ viewport: PHONE, colorScheme: 'dark' })
      await page.goto((await authorizationRequest()).url.href)
      await passwordStep(page, dave)
      await expectPage(page, 'Turn on two-factor authentication')
      await screenshot(page, 'phone-dark-02-enrolment.png')
    }

    const { page } = await newContext({ viewport: PHONE })
    const request = await authorizationRequest()
    await page.goto(request.url.href)
    await passwordStep(page, dave, { shot: 'phone-01-sign-in.png' })
    await expectPage(page, 'Turn on two-factor authentication')
    await screenshot(page, 'phone-02-enrolment.png')
    await assertFitsPhone(page, 'enrolment page')
    for (const [what, locator] of [
      ['QR code', page.locator('figure.qr svg')],
      ['code field', page.getByLabel('6-digit code from the app')],
      ['confirm button', page.getByRole('button', { name: 'Confirm and turn on' })],
    ]) {
      const box = await locator.boundingBox()
      assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width, `the ${what} is within the screen width`)
    }

    await enrol(page, dave, { javaScript: true, shots: { codes: 'phone-03-recovery-codes.png' } })
    await assertFitsPhone(page, 'recovery codes page')
    await page.getByRole('button', { name: 'I have saved my codes' }).click()
    await backAtClient(page, request.state)

    await page.goto(`${server.issuer}/account/security`)
    await expectPage(page, 'Security')
    await screenshot(page, 'phone-04-security-area.png')
    await assertFitsPhone(page, 'security area')
  })
})

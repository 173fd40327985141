// A Portuguese- and a Spanish-speaking person through sign-in, 2FA
// enrolment and passkey registration, entirely in their language, in
// Debian's Chromium (playwright-core) with a virtual WebAuthn authenticator.
// Portuguese is asked for by the relying party (`ui_locales=pt-BR`) in an
// English-language browser; Spanish comes only from the browser's
// `Accept-Language`. The app is a third-party one, so each sign-in passes
// through the consent page. Every page is checked with axe-core and saved
// as a screenshot. The authenticator app is Debian's `oathtool`. A last test
// goes through sign-in, enrolment and consent with the keyboard alone.

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
  STEP_TIMEOUT_MS,
  assertAccessible,
  screenshotDir,
  startClientSite,
} from './browser.js'
import { rpConfig, startServer } from './support.js'

const run = promisify(execFile)
const CLIENT_ID = 'example-app'

// What each language's pages say, as a speaker of it reads them.
const LANGUAGES = [
  {
    lang: 'pt-BR',
    browserLocale: 'en-US',
    uiLocales: 'pt-BR',
    user: { email: 'joana@example.com', name: 'Joana', password: 'senha-bem-comprida-123', emailVerified: true },
    signIn: 'Entrar',
    signInButton: 'Entrar',
    enrol: 'Ativar a autenticação de dois fatores',
    codes: 'Salve seus códigos de recuperação',
    saved: 'Já salvei meus códigos',
    consent: 'Example App quer acessar sua conta',
    scope: 'Ver seu endereço de e-mail e se ele foi verificado',
    allow: 'Permitir',
    security: 'Segurança',
    addPasskey: 'Registrar uma nova passkey',
    addPasskeyButton: 'Registrar uma passkey',
    added: 'A passkey foi registrada e está pronta para o seu próximo login.',
    logout: 'Sair?',
    logoutButton: 'Sair',
    loggedOut: 'Você saiu',
  },
  {
    lang: 'es',
    browserLocale: 'es-ES',
    uiLocales: null,
    // This one also checks the dark colour scheme (axe-core's contrast rule).
    colorScheme: 'dark',
    user: { email: 'lucia@example.com', name: 'Lucía', password: 'contrasena-muy-larga-456', emailVerified: true },
    signIn: 'Iniciar sesión',
    signInButton: 'Iniciar sesión',
    enrol: 'Activar la autenticación de dos factores',
    codes: 'Guarda tus códigos de recuperación',
    saved: 'Ya guardé mis códigos',
    consent: 'Example App quiere acceder a tu cuenta',
    scope: 'Ver tu dirección de correo electrónico y si está verificada',
    allow: 'Permitir',
    security: 'Seguridad',
    addPasskey: 'Registrar una nueva passkey',
    addPasskeyButton: 'Registrar una passkey',
    added: 'La passkey está registrada y lista para tu próximo inicio de sesión.',
    logout: '¿Cerrar sesión?',
    logoutButton: 'Cerrar sesión',
    loggedOut: 'Has cerrado sesión',
  },
]

// Signs in with the keyboard alone.
const keyboardUser = { email: 'kim@example.com', name: 'Kim', password: 'only-the-keyboard-789', emailVerified: true }

describe('the pages in Portuguese and Spanish (Chromium)', { skip: !HAVE_CHROMIUM && NO_CHROMIUM }, () => {
  let server
  let clientSite
  let redirectUri
  let config
  let browser
  let shotDir

  before(async () => {
    shotDir = await screenshotDir()
    console.log(`screenshots: ${shotDir}`)
    clientSite = await startClientSite()
    redirectUri = `http://localhost:${clientSite.address().port}/cb`
    server = await startServer({
      productDefault2fa: true,
      clients: [{ client_id: CLIENT_ID, name: 'Example App', redirect_uris: [redirectUri], first_party: false }],
      users: [...LANGUAGES.map((l) => l.user), keyboardUser],
    })
    config = await rpConfig(server, CLIENT_ID)
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS })
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
    clientSite?.closeAllConnections()
    await new Promise((resolve) => (clientSite ? clientSite.close(resolve) : resolve()))
  })

  /** The page's language, h1 and title, checked together with axe-core. */
  async function expectPageIn(page, l, title, shot) {
    const h1 = page.getByRole('heading', { level: 1, name: title, exact: true })
    await h1.waitFor().catch(async () => {
      assert.fail(`expected "${title}", got ${JSON.stringify(await page.locator('h1').allTextContents())} at ${page.url()}`)
    })
    assert.equal(await page.locator('html').getAttribute('lang'), l.lang)
    assert.equal(await page.title(), `${title} · Zapini ID`)
    await assertAccessible(page, `${l.lang} ${title}`)
    await page.screenshot({ path: path.join(shotDir, `lang-${l.lang}-${shot}.png`), fullPage: true })
  }

  for (const l of LANGUAGES) {
    const how = l.uiLocales ? `ui_locales=${l.uiLocales}` : `Accept-Language ${l.browserLocale}`
    test(`${l.lang} (${how}, ${l.colorScheme ?? 'light'} mode): sign-in, 2FA enrolment, passkey registration and sign-out all in ${l.lang}`, async () => {
      const ctx = await browser.newContext({
        viewport: DESKTOP,
        locale: l.browserLocale,
        colorScheme: l.colorScheme ?? 'light',
      })
      ctx.setDefaultTimeout(STEP_TIMEOUT_MS)
      try {
        const page = await ctx.newPage()
        const cdp = await ctx.newCDPSession(page)
        await cdp.send('WebAuthn.enable')
        await cdp.send('WebAuthn.addVirtualAuthenticator', {
          options: {
            protocol: 'ctap2',
            transport: 'internal',
            hasResidentKey: true,
            hasUserVerification: true,
            isUserVerified: true,
            automaticPresenceSimulation: true,
          },
        })

        const codeVerifier = oidc.randomPKCECodeVerifier()
        const state = oidc.randomState()
        const params = {
          redirect_uri: redirectUri,
          scope: 'openid email',
          code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
          code_challenge_method: 'S256',
          state,
        }
        if (l.uiLocales) params.ui_locales = l.uiLocales
        await page.goto(oidc.buildAuthorizationUrl(config, params).href)

        await expectPageIn(page, l, l.signIn, '01-sign-in')
        await page.locator('input[name=username]').fill(l.user.email)
        await page.locator('input[name=password]').fill(l.user.password)
        await page.getByRole('button', { name: l.signInButton, exact: true }).click()

        await expectPageIn(page, l, l.enrol, '02-enrolment')
        const otpauth = new URL(await page.locator('a[href^="otpauth://"]').getAttribute('href'))
        const { stdout } = await run('oathtool', ['--totp', '-b', otpauth.searchParams.get('secret')])
        await page.locator('input[name=code]').fill(stdout.trim())
        await page.locator('form button[type=submit].primary').click()

        await expectPageIn(page, l, l.codes, '03-recovery-codes')
        await page.getByRole('button', { name: l.saved }).click()

        await expectPageIn(page, l, l.consent, '03b-consent')
        await page.getByRole('listitem').filter({ hasText: l.scope }).waitFor()
        await page.getByRole('button', { name: l.allow, exact: true }).click()
        await page.waitForURL((u) => u.href.startsWith(`${redirectUri}?`))
        const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url()), {
          pkceCodeVerifier: codeVerifier,
          expectedState: state,
        })
        assert.equal(tokens.claims().acr, 'mfa')

        await page.goto(`${server.issuer}/account/security`)
        await expectPageIn(page, l, l.security, '04-security')
        const register = page.getByRole('button', { name: l.addPasskeyButton })
        // The form is unfolded while the user has no passkey.
        if (!(await register.isVisible())) await page.getByText(l.addPasskey).click()
        await register.click()
        await page.getByText(l.added).waitFor()
        await expectPageIn(page, l, l.security, '05-security-passkey')

        // The app asks to sign out without an id_token_hint: the user confirms.
        await page.goto(`${server.issuer}/session/end?client_id=${CLIENT_ID}`)
        await expectPageIn(page, l, l.logout, '06-logout-confirm')
        await page.getByRole('button', { name: l.logoutButton, exact: true }).click()
        await expectPageIn(page, l, l.loggedOut, '07-logged-out')
      } finally {
        await ctx.close()
      }
    })
  }

  test('the error page, in Portuguese, passes axe-core too', async () => {
    const ctx = await browser.newContext({ viewport: DESKTOP, locale: 'pt-BR' })
    try {
      const page = await ctx.newPage()
      const answer = await page.goto(`${server.issuer}/no-such-page`)
      assert.equal(answer.status(), 404)
      await page.getByText('Esta página não existe.').waitFor()
      assert.equal(await page.locator('html').getAttribute('lang'), 'pt-BR')
      await assertAccessible(page, 'pt-BR error page')
    } finally {
      await ctx.close()
    }
  })

  /** Presses Tab until the focused element matches `selector`; fails after 30 presses. */
  async function tabTo(page, selector) {
    for (let i = 0; i < 30; i++) {
      if (await page.evaluate((sel) => document.activeElement?.matches(sel) ?? false, selector)) return
      await page.keyboard.press('Tab')
    }
    assert.fail(`Tab never reached ${selector} on ${page.url()}`)
  }

  test('keyboard only: sign-in, 2FA enrolment and the recovery codes with Tab, typing and Enter', async () => {
    const ctx = await browser.newContext({ viewport: DESKTOP, locale: 'en-US' })
    ctx.setDefaultTimeout(STEP_TIMEOUT_MS)
    try {
      const page = await ctx.newPage()
      const codeVerifier = oidc.randomPKCECodeVerifier()
      const state = oidc.randomState()
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: 'openid email',
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
      })
      await page.goto(url.href)
      await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor()
      await tabTo(page, 'input[name=username]')
      await page.keyboard.type(keyboardUser.email)
      await page.keyboard.press('Tab')
      await tabTo(page, 'input[name=password]')
      await page.keyboard.type(keyboardUser.password)
      await page.keyboard.press('Enter')

      await page.getByRole('heading', { level: 1, name: 'Turn on two-factor authentication' }).waitFor()
      const otpauth = new URL(await page.locator('a[href^="otpauth://"]').getAttribute('href'))
      const { stdout } = await run('oathtool', ['--totp', '-b', otpauth.searchParams.get('secret')])
      await tabTo(page, 'input[name=code]')
      await page.keyboard.type(stdout.trim())
      await page.keyboard.press('Enter')

      await page.getByRole('heading', { level: 1, name: 'Save your recovery codes' }).waitFor()
      await tabTo(page, 'form[action="/login/finish"] button[type=submit]')
      await page.keyboard.press('Enter')

      await page.getByRole('heading', { level: 1, name: 'Example App wants to access your account' }).waitFor()
      await page.screenshot({ path: path.join(shotDir, 'consent.png'), fullPage: true })
      await tabTo(page, 'button[value=allow]')
      await page.keyboard.press('Enter')
      await page.waitForURL((u) => u.href.startsWith(`${redirectUri}?`))
      const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url()), {
        pkceCodeVerifier: codeVerifier,
        expectedState: state,
      })
      assert.deepEqual(tokens.claims().amr, ['pwd', 'otp', 'mfa'])
    } finally {
      await ctx.close()
    }
  })
})

// Shared helpers for the black-box tests: start a real zapini-id server in a
// fresh temporary directory, and play the browser's part of a sign-in with
// plain fetch and a tiny cookie jar.
//
// Not a test file itself (node --test only picks up *.test.js here).

import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import * as oidc from 'openid-client'

const here = path.dirname(fileURLToPath(import.meta.url))

/**
 * The server binary: $ZAPINI_ID_BIN, or ../../target/debug/zapini-id relative
 * to the test files (which live beside this module, in tests/node/).
 */
export const BIN =
  process.env.ZAPINI_ID_BIN ?? path.resolve(here, '../../target/debug/zapini-id')

const READY_TEXT = 'Zapini ID is ready'
const READY_TIMEOUT_MS = 30_000

/** A random string of printable characters, at least 32 long. */
export function randomSecret() {
  return randomBytes(32).toString('base64url')
}

/** Asks the kernel for a free TCP port on 127.0.0.1, then frees it again. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** The environment for a child process: ours without any ZAPINI_ID_* setting. */
function childEnv(extra) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('ZAPINI_ID_')) env[k] = v
  }
  return { ...env, ...extra }
}

/** A TOML basic string (double-quoted, escaped). */
function tomlString(s) {
  return JSON.stringify(String(s))
}

function tomlArray(items) {
  return `[${items.map(tomlString).join(', ')}]`
}

function runCli(args, { env, input }) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr })
      else reject(new Error(`${BIN} ${args.join(' ')} exited ${code}\n${stdout}\n${stderr}`))
    })
    child.stdin.end(input ?? '')
  })
}

/**
 * Starts a server.
 *
 * clients: [{ client_id, redirect_uris, token_endpoint_auth_method, scopes,
 *             id_token_signed_response_alg, secret?, name?, grant_types?,
 *             jwks?, privateKey?, require_2fa?, first_party?,
 *             post_logout_redirect_uris? }]
 *   `grant_types` and `jwks` (a JWK Set object, for private_key_jwt) go to
 *   the client file as they are; `privateKey` ({ key: CryptoKey, kid }) is
 *   what rpConfig signs private_key_jwt assertions with.
 *   `name` is the name the sign-in pages show (default: the client_id).
 *   `require_2fa: true` makes the client demand a second factor.
 *   `first_party: false` makes it a third-party app, whose users see the
 *   consent page (by default test clients are first-party).
 *   A confidential client gets a fresh random secret (or `secret`), handed to
 *   the server through an environment variable (client_secret_env).
 * users: [{ email, name, password, emailVerified }]
 * productDefault2fa: when true, the config leaves [login] require_2fa alone,
 *   so the product default applies (every sign-in needs a second factor);
 *   by default the config turns it off for the password-only tests.
 * env: extra environment for the server and the CLI, e.g.
 *   { ZAPINI_ID_TEST_CLOCK_START: '1700000000' } (honoured by debug builds).
 *
 * Returns { issuer, port, dir, clients: {id: {...client, secret}}, users,
 *           log(), stop() }.
 */
export async function startServer({ clients = [], users = [], productDefault2fa = false, env: extraEnv = {} } = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'zapini-node-test-'))
  const clientsDir = path.join(dir, 'clients')
  await mkdir(clientsDir)
  const port = await freePort()
  const issuer = `http://localhost:${port}`
  const configFile = path.join(dir, 'zapini-id.toml')
  await writeFile(
    configFile,
    [
      `issuer = ${tomlString(issuer)}`,
      `listen = ${tomlString(`127.0.0.1:${port}`)}`,
      `database_url = ${tomlString(`sqlite://${path.join(dir, 'zapini-id.db')}?mode=rwc`)}`,
      `secret_file = ${tomlString(path.join(dir, 'secret.key'))}`,
      `clients_dir = ${tomlString(clientsDir)}`,
      '',
      '[password]',
      'memory_kib = 19456',
      'iterations = 2',
      'parallelism = 1',
      '',
      // Most tests cover the password-only flow; two-factor sign-in has
      // tests of its own, which ask for the product default.
      ...(productDefault2fa ? [] : ['[login]', 'require_2fa = false', '']),
    ].join('\n'),
  )

  const secretEnv = {}
  const registered = {}
  for (const [i, c] of clients.entries()) {
    const method = c.token_endpoint_auth_method ?? 'client_secret_basic'
    const lines = [
      `client_id = ${tomlString(c.client_id)}`,
      `redirect_uris = ${tomlArray(c.redirect_uris)}`,
      `token_endpoint_auth_method = ${tomlString(method)}`,
      `scopes = ${tomlArray(c.scopes ?? ['openid', 'profile', 'email'])}`,
    ]
    if (c.name !== undefined) lines.push(`name = ${tomlString(c.name)}`)
    if (c.require_2fa !== undefined) lines.push(`require_2fa = ${c.require_2fa ? 'true' : 'false'}`)
    // Test clients are the operator's own apps unless a test says otherwise.
    lines.push(`first_party = ${c.first_party === false ? 'false' : 'true'}`)
    if (c.id_token_signed_response_alg) {
      lines.push(`id_token_signed_response_alg = ${tomlString(c.id_token_signed_response_alg)}`)
    }
    if (c.grant_types) lines.push(`grant_types = ${tomlArray(c.grant_types)}`)
    if (c.jwks) lines.push(`jwks = ${tomlString(JSON.stringify(c.jwks))}`)
    if (c.post_logout_redirect_uris) {
      lines.push(`post_logout_redirect_uris = ${tomlArray(c.post_logout_redirect_uris)}`)
    }
    let secret
    if (method.startsWith('client_secret')) {
      secret = c.secret ?? randomSecret()
      const envName = `ZAPINI_NODE_TEST_CLIENT_SECRET_${i}`
      secretEnv[envName] = secret
      lines.push(`client_secret_env = ${tomlString(envName)}`)
    }
    await writeFile(path.join(clientsDir, `client-${i}.toml`), lines.join('\n') + '\n')
    registered[c.client_id] = { ...c, token_endpoint_auth_method: method, secret }
  }

  const env = childEnv({ ZAPINI_ID_SECRET: randomSecret(), ...secretEnv, ...extraEnv })

  const createdUsers = {}
  for (const u of users) {
    const args = ['users', 'add', '--email', u.email, '--password-stdin', '--config', configFile]
    if (u.name !== undefined) args.push('--name', u.name)
    if (u.emailVerified) args.push('--email-verified')
    const { stdout } = await runCli(args, { env, input: `${u.password}\n` })
    createdUsers[u.email] = { ...u, cliOutput: stdout.trim() }
  }

  const child = spawn(BIN, ['serve', '--config', configFile], {
    env,
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))

  const killOnExit = () => {
    try {
      process.kill(child.pid, 'SIGKILL')
    } catch {}
  }
  process.on('exit', killOnExit)

  let stopped = false
  async function stop() {
    if (stopped) return
    stopped = true
    process.off('exit', killOnExit)
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGTERM')
      const timer = setTimeout(() => {
        try {
          process.kill(child.pid, 'SIGKILL')
        } catch {}
      }, 5_000)
      await exited
      clearTimeout(timer)
    }
    await rm(dir, { recursive: true, force: true })
  }

  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server not ready after ${READY_TIMEOUT_MS} ms:\n${output}`)),
        READY_TIMEOUT_MS,
      )
      const check = () => {
        if (output.includes(READY_TEXT)) {
          clearTimeout(timer)
          resolve()
        }
      }
      child.stderr.on('data', check)
      child.stdout.on('data', check)
      child.on('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      exited.then(({ code, signal }) => {
        clearTimeout(timer)
        reject(new Error(`server exited early (code ${code}, signal ${signal}):\n${output}`))
      })
    })
  } catch (err) {
    await stop()
    throw err
  }

  return {
    issuer,
    port,
    dir,
    pid: child.pid,
    clients: registered,
    users: createdUsers,
    log: () => output,
    stop,
  }
}

/** A minimal cookie jar: name=value pairs, honouring Max-Age=0 deletions. */
export class CookieJar {
  #cookies = new Map()

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';')
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a))
      if (expired || value === '') this.#cookies.delete(name)
      else this.#cookies.set(name, value)
    }
  }

  has(name) {
    return this.#cookies.has(name)
  }

  get(name) {
    return this.#cookies.get(name)
  }

  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }
}

/** One browser request: no redirects followed, cookies sent and stored. */
export async function browserFetch(jar, url, init = {}) {
  const headers = new Headers(init.headers)
  const cookie = jar.header()
  if (cookie) headers.set('cookie', cookie)
  const response = await fetch(url, { ...init, headers, redirect: 'manual' })
  jar.store(response)
  return response
}

export function locationOf(response, base) {
  const loc = response.headers.get('location')
  if (!loc) throw new Error(`no Location header on ${response.status} from ${base}`)
  return new URL(loc, base)
}

/** Pulls the sign-in form's fields out of the page's HTML. */
export function parseLoginForm(html) {
  const form = html.match(/<form\b[^>]*\bmethod="post"[^>]*>[\s\S]*?<\/form>/i)
  if (!form) throw new Error(`no POST form in page:\n${html}`)
  const action = form[0].match(/\baction="([^"]*)"/i)?.[1]
  const hidden = {}
  for (const m of form[0].matchAll(/<input\b[^>]*>/gi)) {
    const tag = m[0]
    const type = tag.match(/\btype="([^"]*)"/i)?.[1]
    const name = tag.match(/\bname="([^"]*)"/i)?.[1]
    const value = tag.match(/\bvalue="([^"]*)"/i)?.[1] ?? ''
    if (type === 'hidden' && name) hidden[name] = decodeHtml(value)
  }
  const fields = [...form[0].matchAll(/<input\b[^>]*\bname="([^"]*)"/gi)].map((m) => m[1])
  return { action, hidden, fields }
}

function decodeHtml(s) {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#x([0-9a-f]+);/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#([0-9]+);/g, (_, dec) => String.fromCodePoint(Number(dec)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
}

/**
 * Follows an authorization URL to the sign-in form.
 * Returns { jar, loginUrl, page, form } and records every step in `steps`.
 */
export async function openSignIn(authorizationUrl, jar = new CookieJar()) {
  const steps = []
  const first = await browserFetch(jar, authorizationUrl)
  steps.push({ method: 'GET', url: String(authorizationUrl), status: first.status, location: first.headers.get('location') })
  if (first.status !== 303) {
    throw new Error(`GET ${authorizationUrl} answered ${first.status}, not 303:\n${await first.text()}`)
  }
  const loginUrl = locationOf(first, authorizationUrl)
  const page = await browserFetch(jar, loginUrl)
  const html = await page.text()
  steps.push({ method: 'GET', url: String(loginUrl), status: page.status })
  if (page.status !== 200) throw new Error(`GET ${loginUrl} answered ${page.status}:\n${html}`)
  return { jar, loginUrl, html, form: parseLoginForm(html), steps }
}

/** Posts the sign-in form. Returns the raw response (and its body text). */
export async function submitSignIn({ jar, loginUrl, form }, { username, password }) {
  const body = new URLSearchParams({ ...form.hidden, username, password })
  const response = await browserFetch(jar, new URL(form.action, loginUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
  })
  const text = await response.text()
  return { response, text }
}

/**
 * Plays the whole browser part: authorization URL → sign-in form → POST
 * credentials → /authorize/continue → the client's redirect URI.
 * Returns the URL the browser would be sent back to (with code, state, iss).
 */
export async function signIn(authorizationUrl, { username, password }) {
  const ctx = await openSignIn(authorizationUrl)
  const { response, text } = await submitSignIn(ctx, { username, password })
  if (response.status !== 303) {
    throw new Error(`POST sign-in answered ${response.status}, not 303:\n${text}`)
  }
  const url = locationOf(response, ctx.loginUrl)
  const callbackUrl = await followToClient(ctx.jar, url, new URL(authorizationUrl).origin)
  return { callbackUrl, jar: ctx.jar }
}

/**
 * Follows the server's own redirects (e.g. /authorize/continue) from `url`
 * until the browser would leave `origin` for the client's redirect URI, and
 * returns that URI. With a jar that holds a session, an authorization URL
 * leads straight there, without the sign-in form.
 */
export async function followToClient(jar, url, origin = new URL(url).origin) {
  url = new URL(url)
  for (let hops = 0; url.origin === origin; hops++) {
    if (hops > 5) throw new Error(`too many redirects inside the server, at ${url}`)
    const r = await browserFetch(jar, url)
    const t = await r.text()
    if (r.status !== 303 && r.status !== 302) {
      throw new Error(`GET ${url} answered ${r.status}, not a redirect:\n${t}`)
    }
    url = locationOf(r, url)
  }
  return url
}

/** The payload and header of a compact JWS, without any verification. */
export function decodeJwt(jwt) {
  const [h, p] = jwt.split('.')
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  }
}

/**
 * The at_hash for an access token (OIDC Core 3.1.3.6): the left half of the
 * hash of its ASCII octets, with the hash that goes with the JWS alg
 * (SHA-512 for EdDSA over Ed25519).
 */
export function expectedAtHash(accessToken, alg) {
  const hash = { RS256: 'sha256', PS256: 'sha256', ES256: 'sha256', EdDSA: 'sha512', Ed25519: 'sha512' }[alg]
  if (!hash) throw new Error(`no at_hash rule for alg ${alg}`)
  const digest = createHash(hash).update(accessToken, 'ascii').digest()
  return digest.subarray(0, digest.length / 2).toString('base64url')
}

// ---------------------------------------------------------------------------
// The relying party's side, with openid-client.


/**
 * A Configuration for one registered client, discovered from the issuer,
 * allowed to use http (the test issuer is http://localhost) and made to
 * verify ID token signatures against the server's JWKS.
 */
export async function rpConfig(server, clientId) {
  const c = server.clients[clientId]
  if (!c) throw new Error(`unknown client ${clientId}`)
  const metadata = {
    client_id: clientId,
    redirect_uris: c.redirect_uris,
    require_auth_time: true,
  }
  if (c.id_token_signed_response_alg) {
    metadata.id_token_signed_response_alg = c.id_token_signed_response_alg
  }
  let auth
  switch (c.token_endpoint_auth_method) {
    case 'client_secret_basic':
      auth = oidc.ClientSecretBasic(c.secret)
      break
    case 'client_secret_post':
      auth = oidc.ClientSecretPost(c.secret)
      break
    case 'none':
      auth = oidc.None()
      break
    case 'private_key_jwt':
      auth = oidc.PrivateKeyJwt(c.privateKey)
      break
    default:
      throw new Error(`no client auth for ${c.token_endpoint_auth_method}`)
  }
  return oidc.discovery(new URL(server.issuer), clientId, metadata, auth, {
    execute: [oidc.allowInsecureRequests, oidc.enableNonRepudiationChecks],
  })
}

/**
 * The whole authorization code flow with PKCE, state and nonce: build the
 * authorization URL, sign in as `user` through the browser steps, and redeem
 * the code with openid-client (which validates the ID token).
 */
export async function codeFlow(server, clientId, user, { scope = 'openid profile email' } = {}) {
  const config = await rpConfig(server, clientId)
  const c = server.clients[clientId]
  const codeVerifier = oidc.randomPKCECodeVerifier()
  const codeChallenge = await oidc.calculatePKCECodeChallenge(codeVerifier)
  const state = oidc.randomState()
  const nonce = oidc.randomNonce()
  const authorizationUrl = oidc.buildAuthorizationUrl(config, {
    redirect_uri: c.redirect_uris[0],
    scope,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  })
  const { callbackUrl, jar } = await signIn(authorizationUrl, { username: user.email, password: user.password })
  const checks = { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce }
  const tokens = await oidc.authorizationCodeGrant(config, callbackUrl, checks)
  return { config, tokens, claims: tokens.claims(), callbackUrl, checks, authorizationUrl, state, nonce, jar }
}

/**
 * The checks every successful code flow must pass beyond what openid-client
 * already did (signature, iss, aud, azp, exp, iat, nonce, alg): the claims
 * this product promises in its ID tokens.
 */
export async function assertIdTokenClaims(assert, server, clientId, flow) {
  const { tokens, claims, nonce } = flow
  const c = server.clients[clientId]
  const now = Math.floor(Date.now() / 1000)

  assert.equal(typeof tokens.access_token, 'string')
  assert.ok(tokens.access_token.length >= 20, 'access token has some entropy')
  assert.equal(tokens.token_type, 'bearer')
  assert.equal(typeof tokens.id_token, 'string')

  const { header } = decodeJwt(tokens.id_token)
  assert.equal(header.alg, c.id_token_signed_response_alg ?? 'RS256', 'ID token alg is the client\'s')
  assert.equal(typeof header.kid, 'string', 'ID token header has a kid')
  const jwks = await (await fetch(flow.config.serverMetadata().jwks_uri)).json()
  const key = jwks.keys.find((k) => k.kid === header.kid)
  assert.ok(key, `kid ${header.kid} is in the JWKS`)
  assert.equal(key.alg, header.alg, 'the JWKS key for that kid has the same alg')

  assert.equal(claims.iss, server.issuer)
  if (Array.isArray(claims.aud)) assert.ok(claims.aud.includes(clientId))
  else assert.equal(claims.aud, clientId)
  assert.equal(claims.azp, clientId, 'azp is the client')
  assert.equal(typeof claims.sub, 'string')
  assert.ok(claims.sub.length > 0)
  assert.equal(claims.nonce, nonce)
  assert.ok(claims.exp > now, 'exp is in the future')
  assert.ok(claims.iat <= now + 5, 'iat is not in the future')
  assert.equal(typeof claims.auth_time, 'number', 'auth_time is a number')
  assert.ok(claims.auth_time <= claims.iat, 'auth_time is not after iat')
  assert.ok(claims.auth_time >= now - 120, 'auth_time is the sign-in just done')
  assert.equal(typeof claims.sid, 'string', 'sid is a string')
  assert.ok(claims.sid.length > 0, 'sid is not empty')
  assert.deepEqual(claims.amr, ['pwd'], 'amr is ["pwd"]')
  assert.equal(claims.acr, 'pwd', 'acr is "pwd"')
  assert.equal(claims.at_hash, expectedAtHash(tokens.access_token, header.alg), 'at_hash matches the access token')

  // RFC 9207: the authorization response names the issuer.
  assert.equal(flow.callbackUrl.searchParams.get('iss'), server.issuer)
  assert.equal(flow.callbackUrl.searchParams.get('state'), flow.state)
}

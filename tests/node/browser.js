// Shared pieces of the browser tests: Debian's Chromium through
// playwright-core, a page standing in for the relying party's site, and the
// checks every page gets.
//
// Not a test file itself (node --test only picks up *.test.js here).

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp } from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'

export const CHROMIUM = '/usr/bin/chromium'
export const HAVE_CHROMIUM = existsSync(CHROMIUM)
export const NO_CHROMIUM = `${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium) to run the browser tests`

export const LAUNCH_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
export const DESKTOP = { width: 1280, height: 900 }
export const PHONE = { width: 390, height: 844 }
export const STEP_TIMEOUT_MS = 15_000

/** Where screenshots go: $SCREENSHOT_DIR, or a fresh temporary folder. */
export async function screenshotDir() {
  const dir = process.env.SCREENSHOT_DIR
    ? path.resolve(process.env.SCREENSHOT_DIR)
    : await mkdtemp(path.join(os.tmpdir(), 'zapini-screenshots-'))
  await mkdir(dir, { recursive: true })
  return dir
}

/** The relying party's redirect URI: a page on 127.0.0.1 that says "back at the app". */
export function startClientSite() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
    res.end('<!doctype html><html lang="en"><title>Example App</title><h1>Back at Example App</h1></html>')
  })
  return new Promise((resolve, reject) => {
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server))
  })
}

/** Waits for the page whose h1 is `title`; says which page came instead. */
export async function expectPage(page, title) {
  const h1 = page.getByRole('heading', { level: 1, name: title, exact: true })
  try {
    await h1.waitFor()
  } catch {
    const shown = await page.locator('h1').allTextContents().catch(() => [])
    const body = await page.locator('body').innerText().catch(() => '')
    assert.fail(`expected the page "${title}", got h1 ${JSON.stringify(shown)} at ${page.url()}:\n${body}`)
  }
  assert.equal(await page.title(), `${title} · Zapini ID`, 'the tab title names the page')
}

/**
 * Basic accessibility facts: the document language is set, there is one
 * h1, and every input a person can reach (not type=hidden, not [hidden];
 * inputs inside a closed <details> count, they show on one click) has a
 * label with text or an aria-label.
 */
export async function assertAccessible(page, what) {
  const lang = await page.locator('html').getAttribute('lang')
  assert.ok(lang && /^[a-z]{2,3}(-[A-Za-z0-9]+)*$/.test(lang), `${what}: html[lang] is set (got ${JSON.stringify(lang)})`)
  assert.equal(await page.locator('h1').count(), 1, `${what}: one h1`)
  const inputs = page.locator('input:not([type=hidden]):not([hidden]), select, textarea')
  const n = await inputs.count()
  for (let i = 0; i < n; i++) {
    const input = inputs.nth(i)
    const facts = await input.evaluate((el) => ({
      html: el.outerHTML,
      labels: [...(el.labels ?? [])].map((l) => l.textContent.trim()).filter(Boolean),
      ariaLabel: (el.getAttribute('aria-label') ?? '').trim(),
      labelledBy: (el.getAttribute('aria-labelledby') ?? '')
        .split(/\s+/)
        .map((id) => document.getElementById(id)?.textContent.trim())
        .filter(Boolean),
    }))
    assert.ok(
      facts.labels.length + facts.labelledBy.length > 0 || facts.ariaLabel,
      `${what}: input has a label: ${facts.html}`,
    )
  }
}

// Shared pieces of the browser tests: Debian's Chromium through
// playwright-core, a page standing in for the relying party's site, and the
// checks every page gets.
//
// Not a test file itself (node --test only picks up *.test.js here).

import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { createRequire } from 'node:module'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'

// axe-core (npm), the accessibility rules engine, as source text: evaluated
// in the page through the DevTools protocol, which the page's CSP does not
// govern, so the pages need no test-only relaxation.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

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
  await assertAxe(page, what)
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

const scriptless = new WeakSet()

/** Marks a page whose profile runs no JavaScript (for assertAxe). */
export function markScriptless(page) {
  scriptless.add(page)
  return page
}

/**
 * Runs axe-core's WCAG 2.0/2.1 A and AA rules (contrast included) on the
 * page as it is, and fails with every violation and where it is.
 */
export async function assertAxe(page, what) {
  // A page in a profile with JavaScript off cannot run axe itself: its
  // markup and styles are checked in a scratch page of the same browser
  // (scripts left out, as that profile runs none).
  const jsOff = scriptless.has(page)
  let target = page
  let scratch = null
  if (jsOff) {
    scratch = await page.context().browser().newPage()
    const origin = new URL(page.url()).origin
    const html = (await page.content())
      .replace(/<script\b[^>]*>[\s\S]*?<\/script>/g, '')
      .replace('<head>', `<head><base href="${origin}/">`)
    await scratch.setContent(html, { waitUntil: 'load' })
    target = scratch
  }
  try {
    const violations = await target.evaluate(async (source) => {
      if (!window.axe) (0, eval)(source)
      const result = await window.axe.run(document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
        resultTypes: ['violations'],
      })
      return result.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
      }))
    }, AXE_SOURCE)
    assert.deepEqual(violations, [], `${what}: axe-core found WCAG violations:\n${JSON.stringify(violations, null, 2)}`)
  } finally {
    await scratch?.close()
  }
}

import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildResourceServer } from '../../examples/resource-server/app.js';
import { startSpaServer, type SpaConfig, type SpaServer } from '../../examples/spa/serve.js';
import { buildApp } from '../../src/app.js';
import type { Config } from '../../src/config.js';
import type { AuthEvent } from '../../src/events.js';
import type { RedisStore } from '../../src/store/redis-store.js';
import { createTestStore, silentLogger, testConfig, type TestStore, listenLocal } from '../helpers/app.js';
import { PASSWORD, uniqueEmail } from '../helpers/client.js';
import { chromiumAvailable, CHROMIUM, launchChromium, ACTION_TIMEOUT, docsFile, screenshots } from '../support/chromium.js';
import { testRedisUrl } from '../support/redis.js';
import { gateRotations } from '../support/rotation-gate.js';

/**
 * The example single-page app (examples/spa) in a real, headless Chromium, on 127.0.0.1: the app on one
 * port, latchkey (Redis store) on another, the example resource server (latchkey/verifier on Redis) on a
 * third, and a foreign page on a fourth. Cross-origin but same-site, as a SPA on app.example.com calling
 * auth.example.com would be. Chromium counts http://127.0.0.1 as potentially trustworthy, so the real
 * `Secure; __Host-` cookie works without LATCHKEY_COOKIE_INSECURE_DEV.
 *
 * LATCHKEY_SCREENSHOTS=1 writes docs/spa.png.
 */


describe('the example SPA in Chromium', () => {
  let browser: Browser;
  let test: TestStore;
  let gate: ReturnType<typeof gateRotations>;
  let config: Config;
  let latchkey: FastifyInstance;
  let latchkeyUnderBase: FastifyInstance;
  let resource: FastifyInstance;
  let redis: Redis;
  let spa: SpaServer;
  let spaUnderBase: SpaServer;
  let foreign: SpaServer;
  const events: AuthEvent[] = [];
  const urls: { latchkey: string; latchkeyUnderBase: string; api: string } = { latchkey: '', latchkeyUnderBase: '', api: '' };
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    if (!chromiumAvailable()) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
    const appConfig = (): SpaConfig => ({ latchkeyUrl: urls.latchkey, apiUrl: urls.api });
    [spa, spaUnderBase, foreign, browser] = await Promise.all([
      startSpaServer({ config: appConfig }),
      startSpaServer({ config: () => ({ latchkeyUrl: `${urls.latchkeyUnderBase}/auth`, apiUrl: urls.api }) }),
      // The same app, served from an origin latchkey does not allow.
      startSpaServer({ config: appConfig }),
      launchChromium(),
    ]);

    test = await createTestStore('redis', 'spa');
    gate = gateRotations(test.store);
    config = await testConfig({ LATCHKEY_ALLOWED_ORIGINS: spa.url });
    latchkey = await buildApp(config, { store: gate.store, logger: silentLogger(), onEvent: (e) => events.push(e) });
    urls.latchkey = await listenLocal(latchkey);
    // A second instance on the same store, under a base path, for its own app origin.
    const baseConfig = await testConfig({ LATCHKEY_ALLOWED_ORIGINS: spaUnderBase.url, LATCHKEY_BASE_PATH: '/auth' });
    latchkeyUnderBase = await buildApp(baseConfig, { store: gate.store, logger: silentLogger() });
    urls.latchkeyUnderBase = await listenLocal(latchkeyUnderBase);

    redis = new Redis(testRedisUrl(), { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    ({ app: resource } = await buildResourceServer({
      latchkeyUrl: urls.latchkey,
      issuer: config.issuer,
      audience: config.audience,
      redis,
      keyPrefix: (test.store as RedisStore).keyPrefix,
      corsOrigins: [spa.url, spaUnderBase.url],
      logLevel: 'silent',
    }));
    urls.api = await listenLocal(resource);
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await Promise.all([spa?.close(), spaUnderBase?.close(), foreign?.close()]);
    await resource?.close();
    redis?.disconnect();
    await latchkey?.close();
    await latchkeyUnderBase?.close();
    await test?.dispose();
  });

  async function newContext(): Promise<BrowserContext> {
    const context = await browser.newContext({ viewport: { width: 1000, height: 600 } });
    context.setDefaultTimeout(ACTION_TIMEOUT);
    contexts.push(context);
    return context;
  }

  /** Opens the app and waits until it has decided whether the user is signed in. */
  async function open(context: BrowserContext, url = spa.url): Promise<Page> {
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector('body:not([data-state="loading"])');
    return page;
  }

  /**
   * Clicks a button. Playwright's click() first waits for the element to be stable across animation
   * frames, which Chromium throttles in a tab that is not in front: seconds per click with two tabs open.
   * The app sees the same click event either way.
   */
  const press = (page: Page, selector: string) => page.locator(selector).dispatchEvent('click');

  const state = (page: Page) => page.getAttribute('body', 'data-state');

  async function reload(page: Page): Promise<void> {
    await page.reload();
    await page.waitForSelector('body:not([data-state="loading"])');
  }

  async function login(page: Page, email: string): Promise<void> {
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    await press(page, '#login');
    await page.waitForSelector('body[data-state="signed-in"], #status.error');
    expect(await state(page), `login failed: ${await page.textContent('#status')}`).toBe('signed-in');
  }

  async function registerAndLogin(page: Page): Promise<{ email: string; userId: string }> {
    const email = uniqueEmail('spa');
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    const [registered] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/register') && r.request().method() === 'POST'), press(page, '#register')]);
    expect(registered.status()).toBe(201);
    const { id } = (await registered.json()) as { id: string };
    await login(page, email);
    return { email, userId: id };
  }

  /** An account made directly through the API, for tests whose subject is not registration. */
  async function newAccount(): Promise<{ email: string; userId: string }> {
    const email = uniqueEmail('spa');
    const res = await fetch(`${urls.latchkey}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    expect(res.status).toBe(201);
    return { email, userId: ((await res.json()) as { id: string }).id };
  }

  async function loginNewAccount(page: Page): Promise<{ email: string; userId: string }> {
    const account = await newAccount();
    await login(page, account.email);
    return account;
  }

  /** Clicks "Call the API" and returns the API's first answer (before any refresh-and-retry). */
  async function callApi(page: Page): Promise<number> {
    const [res] = await Promise.all([page.waitForResponse((r) => r.url() === `${urls.api}/me` && r.request().method() === 'GET'), press(page, '#call-api')]);
    return res.status();
  }

  /** Clicks "Refresh now" and returns latchkey's answer. */
  async function refresh(page: Page): Promise<number> {
    const [res] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/refresh') && r.request().method() === 'POST'), press(page, '#refresh')]);
    return res.status();
  }

  const refreshCookie = async (context: BrowserContext) => (await context.cookies()).find((c) => c.name.endsWith('lk_rt'));

  /** Everything page scripts can read that might hold a token (an expression: this file has no DOM types). */
  const readableByScripts = (page: Page) =>
    page.evaluate<string>('JSON.stringify({ cookie: document.cookie, local: { ...localStorage }, session: { ...sessionStorage } })');

  it('registers, logs in, calls the API, manages sessions and logs out; the refresh token never reaches a script', async () => {
    const context = await newContext();
    const page = await open(context);
    expect(await state(page)).toBe('signed-out');
    const { email, userId } = await registerAndLogin(page);

    const cookie = await refreshCookie(context);
    expect(cookie).toMatchObject({ name: '__Host-lk_rt', domain: '127.0.0.1', path: '/', httpOnly: true, secure: true, sameSite: 'Strict' });
    expect(cookie!.value).toMatch(/^lk_rt_/);
    expect(cookie!.expires * 1000 - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    // Scripts see no cookie and no stored state at all.
    expect(JSON.parse(await readableByScripts(page))).toEqual({ cookie: '', local: {}, session: {} });

    expect(await callApi(page)).toBe(200);
    const sessionId = await page.textContent('#session-id');
    expect(await page.textContent('#api-result')).toContain(sessionId!);

    // A second browser signs in too; the first lists both and revokes the other one.
    const other = await open(await newContext());
    await login(other, email);
    await press(page, '#load-sessions');
    await page.waitForSelector('#sessions tr:nth-child(2)');
    expect(await page.locator('#sessions tr.current').getAttribute('data-session-id')).toBe(sessionId);
    if (screenshots) await page.screenshot({ path: docsFile('spa.png'), fullPage: true });
    await press(page, '#sessions tr:not(.current) .revoke');
    await page.waitForSelector('#sessions tr:not(.current)', { state: 'detached' });
    expect(await refresh(other)).toBe(401);
    expect(await state(other)).toBe('signed-out');

    // Refresh: a new cookie, still invisible.
    expect(await refresh(page)).toBe(200);
    expect((await refreshCookie(context))!.value).not.toBe(cookie!.value);
    expect(await page.textContent('#refresh-count')).toBe('1');

    // A reload loses the access token (memory only) and gets a new one through the cookie.
    await reload(page);
    expect(await state(page)).toBe('signed-in');
    expect(await page.textContent('#session-id')).toBe(sessionId);
    expect(await callApi(page)).toBe(200);
    expect(await readableByScripts(page)).not.toMatch(/lk_rt|eyJ/);

    await press(page, '#logout');
    await page.waitForSelector('body[data-state="signed-out"]');
    expect(await refreshCookie(context)).toBeUndefined();
    await reload(page);
    expect(await state(page)).toBe('signed-out');
    expect(await test.store.listSessions(userId, Date.now())).toEqual([]);
  });

  it('renews the access token by itself a minute before it expires', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.clock.install();
    await page.goto(spa.url);
    await page.waitForSelector('body[data-state="signed-out"]');
    await loginNewAccount(page);
    expect(await page.textContent('#expires-in')).toMatch(/^(900|899) s$/);

    await page.clock.fastForward((900 - 61) * 1000);
    expect(await page.textContent('#refresh-count')).toBe('0');
    const renewed = page.waitForResponse((r) => r.url().endsWith('/refresh'));
    await page.clock.fastForward(2000);
    expect((await renewed).status()).toBe(200);
    await page.waitForSelector('#refresh-count:text("1")');
    expect(await callApi(page)).toBe(200);
  });

  it('two tabs refreshing at the same moment, ten times over, stay signed in (the grace window)', async () => {
    const context = await newContext();
    const first = await open(context);
    await loginNewAccount(first);
    const second = await open(context);
    expect(await state(second)).toBe('signed-in');
    const outcomes = gate.outcomes.length;
    const overlaps = gate.overlaps;

    for (let round = 1; round <= 10; round++) {
      gate.arm(2);
      const answers = await Promise.all([refresh(first), refresh(second)]);
      expect(answers, `round ${round}`).toEqual([200, 200]);
      for (const page of [first, second]) expect(await state(page), `round ${round}`).toBe('signed-in');
    }
    // Every round really overlapped, and one request rotated while the other was answered by the grace window.
    expect(gate.overlaps - overlaps).toBe(10);
    const rounds = gate.outcomes.slice(outcomes);
    expect(rounds.filter((s) => s === 'rotated')).toHaveLength(10);
    expect(rounds.filter((s) => s === 'grace')).toHaveLength(10);
    expect(events.filter((e) => e.type === 'refresh_token_reused')).toEqual([]);
    expect([await callApi(first), await callApi(second)]).toEqual([200, 200]);
    expect(await refresh(first)).toBe(200);
  });

  it('"log out everywhere" in another browser stops this one at the API within about a second, and its refresh', async () => {
    const here = await newContext();
    const page = await open(here);
    const { email } = await loginNewAccount(page);
    // The resource server has seen (and cached) this token.
    expect(await callApi(page)).toBe(200);

    const elsewhere = await open(await newContext());
    await login(elsewhere, email);
    const [loggedOut] = await Promise.all([elsewhere.waitForResponse((r) => r.url().endsWith('/logout-all')), press(elsewhere, '#logout-all')]);
    expect(loggedOut.status()).toBe(204);
    const revokedAt = Date.now();
    await elsewhere.waitForSelector('body[data-state="signed-out"]');
    expect(await refreshCookie(elsewhere.context())).toBeUndefined();

    // The app's reaction to a 401 from the API is one refresh, which must fail too.
    const refreshed = page.waitForResponse((r) => r.url().endsWith('/refresh'));
    refreshed.catch(() => undefined); // awaited below; never an unhandled rejection if the test fails first
    let status = 200;
    while (status === 200 && Date.now() - revokedAt < 3000) {
      status = await callApi(page);
      if (status === 200) await page.waitForTimeout(50);
    }
    const elapsed = Date.now() - revokedAt;
    expect(status).toBe(401);
    expect(elapsed).toBeLessThan(1500);
    expect((await refreshed).status()).toBe(401);
    await page.waitForSelector('body[data-state="signed-out"]');
    await reload(page);
    expect(await state(page)).toBe('signed-out');
  });

  it('a page on an origin latchkey does not allow can neither read nor change the session', async () => {
    const context = await newContext();
    const page = await open(context);
    const { userId } = await loginNewAccount(page);
    const [before] = await test.store.listSessions(userId, Date.now());
    const revocations = events.length;

    // The same app from a foreign origin (same site: the browser sends it the cookie). Its attempt to
    // restore the session on load fails.
    const evil = await open(context, foreign.url);
    expect(await state(evil)).toBe('signed-out');
    const attempts = await evil.evaluate(async (latchkey) => {
      const outcomes: string[] = [];
      const attempt = async (path: string, init: RequestInit) => {
        try {
          const res = await fetch(`${latchkey}${path}`, { method: 'POST', credentials: 'include', ...init });
          outcomes.push(`${path} read ${res.status} ${await res.text()}`);
        } catch (err) {
          outcomes.push(`${path} ${(err as Error).name}`);
        }
      };
      // Simple requests (no preflight): the browser sends them with the cookie and hides the answer.
      await attempt('/refresh', {});
      await attempt('/logout', {});
      // Preflighted: the browser does not even send them.
      await attempt('/logout', { headers: { 'content-type': 'application/json' }, body: '{}' });
      await attempt('/refresh', { mode: 'no-cors' });
      return outcomes;
    }, urls.latchkey);
    expect(attempts.slice(0, 3)).toEqual(['/refresh TypeError', '/logout TypeError', '/logout TypeError']);
    // no-cors: an opaque answer (status 0, no body), or none at all where the browser's opaque-response
    // blocking drops a nosniff JSON answer: either way the page reads nothing.
    expect(['/refresh read 0 ', '/refresh TypeError']).toContain(attempts[3]);

    // Nothing changed on the server: not rotated, not revoked.
    const [after] = await test.store.listSessions(userId, Date.now());
    expect(after).toEqual(before);
    expect(events.slice(revocations).filter((e) => 'userId' in e && e.userId === userId)).toEqual([]);
    expect(await callApi(page)).toBe(200);
    expect(await refresh(page)).toBe(200);
  });

  it('works the same under LATCHKEY_BASE_PATH, with a __Secure- cookie scoped to it', async () => {
    const context = await newContext();
    const page = await open(context, spaUnderBase.url);
    await registerAndLogin(page);
    const cookie = await refreshCookie(context);
    expect(cookie).toMatchObject({ name: '__Secure-lk_rt', domain: '127.0.0.1', path: '/auth', httpOnly: true, secure: true, sameSite: 'Strict' });
    expect(await readableByScripts(page)).not.toMatch(/lk_rt|eyJ/);
    expect(await callApi(page)).toBe(200);
    expect(await refresh(page)).toBe(200);
    await reload(page);
    expect(await state(page)).toBe('signed-in');
    await press(page, '#logout');
    await page.waitForSelector('body[data-state="signed-out"]');
    expect(await refreshCookie(context)).toBeUndefined();
    await reload(page);
    expect(await state(page)).toBe('signed-out');
  });
});

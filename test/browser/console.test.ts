import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildResourceServer } from '../../examples/resource-server/app.js';
import { startSpaServer, type SpaConfig, type SpaServer } from '../../examples/spa/serve.js';
import { buildAdminApp } from '../../src/admin/app.js';
import { buildApp } from '../../src/app.js';
import type { RedisStore } from '../../src/store/redis-store.js';
import { createTestStore, silentLogger, testConfig, type TestStore, listenLocal } from '../helpers/app.js';
import { PASSWORD, uniqueEmail } from '../helpers/client.js';
import { chromiumAvailable, CHROMIUM, launchChromium, ACTION_TIMEOUT, docsFile, screenshots } from '../support/chromium.js';
import { testRedisUrl } from '../support/redis.js';

/**
 * The ops console (src/admin/routes/console.ts, src/admin/console/) in a real, headless Chromium: served
 * by the admin app on its own port, next to latchkey's public app, the example SPA (examples/spa) and the
 * example resource server (latchkey/verifier on Redis), all on 127.0.0.1. An operator's actions in the
 * console reach a user's open SPA the way any revocation does.
 *
 * LATCHKEY_SCREENSHOTS=1 writes docs/console.png.
 */


describe('the ops console in Chromium', () => {
  let browser: Browser;
  let test: TestStore;
  let latchkey: FastifyInstance;
  let admin: FastifyInstance;
  let resource: FastifyInstance;
  let redis: Redis;
  let spa: SpaServer;
  /** A page on another origin, with no policy of its own that would stop its requests. */
  let foreign: Server;
  const urls = { latchkey: '', admin: '', api: '', foreign: '' };
  const contexts: BrowserContext[] = [];
  let adminEmail: string;

  beforeAll(async () => {
    if (!chromiumAvailable()) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
    const appConfig = (): SpaConfig => ({ latchkeyUrl: urls.latchkey, apiUrl: urls.api });
    [spa, browser] = await Promise.all([startSpaServer({ config: appConfig }), launchChromium()]);
    foreign = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));
    await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
    urls.foreign = `http://127.0.0.1:${(foreign.address() as AddressInfo).port}`;

    test = await createTestStore('redis', 'console');
    const config = await testConfig({ LATCHKEY_ALLOWED_ORIGINS: spa.url });
    latchkey = await buildApp(config, { store: test.store, logger: silentLogger() });
    urls.latchkey = await listenLocal(latchkey);
    admin = await buildAdminApp(config, latchkey.latchkey);
    urls.admin = await listenLocal(admin);

    redis = new Redis(testRedisUrl(), { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    ({ app: resource } = await buildResourceServer({
      latchkeyUrl: urls.latchkey,
      issuer: config.issuer,
      audience: config.audience,
      redis,
      keyPrefix: (test.store as RedisStore).keyPrefix,
      corsOrigins: [spa.url],
      logLevel: 'silent',
    }));
    urls.api = await listenLocal(resource);

    adminEmail = (await newAccount('ops')).email;
    const operator = await test.store.findUserByEmail(adminEmail);
    await test.store.setRoles(operator!.id, ['admin']);
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await spa?.close();
    foreign?.closeAllConnections();
    await new Promise((resolve) => (foreign ? foreign.close(resolve) : resolve(undefined)));
    await resource?.close();
    redis?.disconnect();
    await admin?.close();
    await latchkey?.close();
    await test?.dispose();
  });

  async function newContext(): Promise<BrowserContext> {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    context.setDefaultTimeout(ACTION_TIMEOUT);
    contexts.push(context);
    return context;
  }

  /** An account made directly through the public API. */
  async function newAccount(tag = 'user', userAgent?: string): Promise<{ email: string; userId: string }> {
    const email = uniqueEmail(tag);
    const res = await fetch(`${urls.latchkey}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(userAgent ? { 'user-agent': userAgent } : {}) },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    expect(res.status).toBe(201);
    return { email, userId: ((await res.json()) as { id: string }).id };
  }

  /** Clicks without waiting for animation frames (see test/browser/spa.test.ts). */
  const press = (page: Page, selector: string) => page.locator(selector).dispatchEvent('click');
  const submit = (page: Page, form: string) => page.locator(form).evaluate((f) => (f as unknown as { requestSubmit(): void }).requestSubmit());

  /** The user's example SPA, signed in, in a browser of its own. */
  async function spaSignedIn(email: string): Promise<{ page: Page; sessionId: string }> {
    const page = await (await newContext()).newPage();
    await page.goto(spa.url);
    await page.waitForSelector('body[data-state="signed-out"]');
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    await press(page, '#login');
    await page.waitForSelector('body[data-state="signed-in"]');
    return { page, sessionId: (await page.textContent('#session-id'))! };
  }

  /** Clicks the SPA's "Call the API" and returns the resource server's first answer. */
  async function callApi(page: Page): Promise<number> {
    const [res] = await Promise.all([page.waitForResponse((r) => r.url() === `${urls.api}/me`), press(page, '#call-api')]);
    return res.status();
  }

  /** Clicks the SPA's "Refresh now" and returns latchkey's answer. */
  async function spaRefresh(page: Page): Promise<number> {
    const [res] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/refresh')), press(page, '#refresh')]);
    return res.status();
  }

  /** Opens the console and signs the operator in. */
  async function consoleSignedIn(context?: BrowserContext): Promise<Page> {
    const page = await (context ?? (await newContext())).newPage();
    await page.goto(`${urls.admin}/admin/console`);
    await page.waitForSelector('body[data-state="signed-out"]');
    await page.fill('#email', adminEmail);
    await page.fill('#password', PASSWORD);
    await submit(page, '#signin-form');
    await page.waitForSelector('body[data-state="signed-in"], #status.error');
    expect(await page.getAttribute('body', 'data-state'), `sign-in failed: ${await page.textContent('#status')}`).toBe('signed-in');
    return page;
  }

  async function find(page: Page, query: string, userId: string): Promise<void> {
    await page.fill('#query', query);
    await submit(page, '#find-form');
    await page.waitForSelector(`#user[data-user-id="${userId}"]`);
    await page.waitForSelector('#audit tr');
  }

  /** Everything page scripts can read that might hold a credential (an expression: this file has no DOM types). */
  const readableByScripts = (page: Page) =>
    page.evaluate<string>('JSON.stringify({ cookie: document.cookie, local: { ...localStorage }, session: { ...sessionStorage } })');

  it('an admin finds a user, sees their session and disables them: the open SPA is logged out at its next call', async () => {
    const user = await newAccount();
    const { page: app, sessionId } = await spaSignedIn(user.email);
    expect(await callApi(app)).toBe(200);

    const context = await newContext();
    const page = await context.newPage();
    const served = await page.goto(`${urls.admin}/admin/console`);
    const csp = served!.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(served!.headers()).toMatchObject({ 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store' });
    await page.close();

    const ops = await consoleSignedIn(context);
    await find(ops, user.email, user.userId);
    const row = ops.locator(`#sessions tr[data-session-id="${sessionId}"]`);
    await row.waitFor();
    expect(await row.locator('td.agent').textContent()).toContain('Chrome');
    expect(await row.textContent()).toContain('127.0.0.1');
    expect(await ops.textContent('#user-status')).toBe('active');
    expect(await ops.locator('#audit tr[data-type="login_succeeded"]').count()).toBeGreaterThan(0);

    // The console's credential is in this page's memory only.
    expect(JSON.parse(await readableByScripts(ops))).toEqual({ cookie: '', local: {}, session: {} });
    expect(await context.cookies()).toEqual([]);

    if (screenshots) await ops.screenshot({ path: docsFile('console.png'), fullPage: true });

    await press(ops, '#disable');
    await ops.waitForSelector('#user[data-disabled="true"]');
    expect(await ops.textContent('#user-status')).toBe('disabled');
    await ops.waitForSelector('#sessions td.empty');
    await ops.waitForSelector('#audit tr[data-type="account_disabled"]');
    expect(await ops.locator('#audit tr[data-type="account_disabled"] td').nth(2).textContent()).toMatch(/^admin:/);
    const disabledAt = Date.now();

    // The SPA's next call fails at the resource server within about a second, and its refresh with it.
    const refreshed = app.waitForResponse((r) => r.url().endsWith('/refresh'));
    refreshed.catch(() => undefined);
    let status = 200;
    while (status === 200 && Date.now() - disabledAt < 3000) {
      status = await callApi(app);
      if (status === 200) await app.waitForTimeout(50);
    }
    expect(status).toBe(401);
    expect((await refreshed).status()).toBe(401);
    await app.waitForSelector('body[data-state="signed-out"]');

    // Enabled again: the user may log in; the revoked session stays revoked.
    await press(ops, '#enable');
    await ops.waitForSelector('#user[data-disabled="false"]');
    expect((await spaSignedIn(user.email)).sessionId).not.toBe(sessionId);
  });

  it('revokes one session of two, and changes roles, through the page', async () => {
    const user = await newAccount();
    const first = await spaSignedIn(user.email);
    const second = await spaSignedIn(user.email);
    const ops = await consoleSignedIn();
    await find(ops, user.userId, user.userId);
    await ops.waitForSelector(`#sessions tr[data-session-id="${second.sessionId}"]`);
    expect(await ops.textContent('#session-count')).toBe('2');

    await press(ops, `#sessions tr[data-session-id="${first.sessionId}"] .revoke`);
    await ops.waitForSelector(`#sessions tr[data-session-id="${first.sessionId}"]`, { state: 'detached' });
    expect(await ops.textContent('#session-count')).toBe('1');
    expect(await spaRefresh(first.page)).toBe(401);
    await first.page.waitForSelector('body[data-state="signed-out"]');
    expect(await spaRefresh(second.page)).toBe(200);
    expect(await callApi(second.page)).toBe(200);

    await ops.fill('#roles', 'support, billing');
    await submit(ops, '#roles-form');
    await ops.waitForSelector('#user-roles:text("support, billing")');
    expect((await test.store.getUser(user.userId))?.roles).toEqual(['support', 'billing']);
    await ops.waitForSelector('#audit tr[data-type="roles_changed"]');
    // Without "and revoke their sessions", the other session lives on.
    expect(await spaRefresh(second.page)).toBe(200);

    await press(ops, '#revoke-all');
    await ops.waitForSelector('#sessions td.empty');
    expect(await spaRefresh(second.page)).toBe(401);
  });

  it('shows what clients sent as text, never as markup', async () => {
    const hostile = '<img src=x onerror="document.body.dataset.owned=1">';
    const user = await newAccount('xss');
    const res = await fetch(`${urls.latchkey}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': hostile },
      body: JSON.stringify({ email: user.email, password: PASSWORD }),
    });
    expect(res.status).toBe(200);
    const ops = await consoleSignedIn();
    await find(ops, user.email, user.userId);
    expect(await ops.locator('#sessions td.agent').textContent()).toBe(hostile);
    expect(await ops.locator('#sessions img, #audit img').count()).toBe(0);
    expect(await ops.getAttribute('body', 'data-owned')).toBeNull();
  });

  it('keeps the credential in memory only, enforces its CSP, and gives other origins nothing to ride on', async () => {
    const user = await newAccount();
    const context = await newContext();
    const ops = await consoleSignedIn(context);
    await find(ops, user.email, user.userId);

    // The policy is enforced: a script injected into the page does not run.
    const inlineRan = await ops.evaluate<boolean>(
      `(() => { const s = document.createElement('script'); s.textContent = 'window.injected = true'; document.body.append(s); return window.injected === true; })()`,
    );
    expect(inlineRan).toBe(false);

    // A page on another origin, in the same browser while the console is signed in: it cannot read the
    // admin API (no CORS), and what it can send (no-cors) carries no credential and is refused.
    const evil = await context.newPage();
    await evil.goto(urls.foreign);
    // What reaches the admin server, as it answers (the browser hides most of it from the page).
    const reached: string[] = [];
    const onRequest = (req: IncomingMessage, res: ServerResponse) =>
      res.on('finish', () => reached.push(`${req.method} ${req.url} ${res.statusCode}${req.headers.authorization ? ' with credentials' : ''}`));
    admin.server.on('request', onRequest);
    const outcomes = await evil.evaluate(
      async ({ admin, userId, email, password }) => {
        const out: string[] = [];
        const attempt = async (path: string, init: RequestInit) => {
          try {
            const res = await fetch(`${admin}${path}`, { credentials: 'include', ...init });
            out.push(`${res.type} ${res.status}`);
          } catch (err) {
            out.push((err as Error).name);
          }
        };
        await attempt(`/admin/users/${userId}`, {});
        await attempt(`/admin/users/${userId}/disable`, { method: 'POST', mode: 'no-cors' });
        await attempt('/admin/console/login', { method: 'POST', mode: 'no-cors', body: JSON.stringify({ email, password }) });
        await attempt('/admin/console/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
        return out;
      },
      { admin: urls.admin, userId: user.userId, email: adminEmail, password: PASSWORD },
    );
    expect(outcomes).toEqual(['TypeError', 'opaque 0', 'opaque 0', 'TypeError']);
    admin.server.off('request', onRequest);
    // Refused without credentials (401) and as a cross-site sign-in (403); the JSON sign-in never left
    // the browser, whose preflight (OPTIONS) was refused.
    expect(reached).toEqual([
      `GET /admin/users/${user.userId} 401`,
      `POST /admin/users/${user.userId}/disable 401`,
      'POST /admin/console/login 403',
      'OPTIONS /admin/console/login 401',
    ]);
    expect((await test.store.getUser(user.userId))?.disabled).toBe(false);

    // The console itself still works, and a reload forgets its credential.
    await press(ops, '#revoke-all');
    await ops.waitForSelector('#status:text("Every session")');
    await ops.reload();
    await ops.waitForSelector('body[data-state="signed-out"]');
    expect(JSON.parse(await readableByScripts(ops))).toEqual({ cookie: '', local: {}, session: {} });

    // Sign out revokes the console's own session.
    const again = await consoleSignedIn(context);
    const operator = await test.store.findUserByEmail(adminEmail);
    const before = (await test.store.listSessions(operator!.id, Date.now())).length;
    await press(again, '#signout');
    await again.waitForSelector('body[data-state="signed-out"]');
    expect((await test.store.listSessions(operator!.id, Date.now())).length).toBe(before - 1);
  });
});

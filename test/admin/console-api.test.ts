import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_CONTEXT } from '../../src/audit/context.js';
import { buildTestAdmin, buildTestApp, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, PASSWORD, post, register } from '../helpers/client.js';

/**
 * The ops console's server side (src/admin/routes/console.ts): its page and its sign-in on the admin
 * listener. The page itself is driven in Chromium by test/browser/console.test.ts.
 */
describe.each(storeKinds)('ops console endpoints (%s store)', (kind) => {
  let t: TestApp;
  let admin: FastifyInstance;
  let adminEmail: string;
  let adminId: string;

  beforeAll(async () => {
    t = await buildTestApp(kind);
    admin = await buildTestAdmin(t);
    const a = await register(t.app);
    adminEmail = a.email;
    adminId = a.id;
    await t.store.setRoles(a.id, ['admin']);
  });
  afterAll(async () => {
    await admin.close();
    await t.close();
  });

  const login = (email: string, password = PASSWORD, headers: Record<string, string> = {}) =>
    post(admin, '/admin/console/login', { email, password }, headers);

  it('serves the page and its files without credentials, with a strict CSP and never cached', async () => {
    for (const [url, type] of [
      ['/admin/console', 'text/html'],
      ['/admin/console/console.js', 'text/javascript'],
      ['/admin/console/console.css', 'text/css'],
    ] as const) {
      const res = await admin.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toContain(type);
      const csp = String(res.headers['content-security-policy']);
      for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"]) {
        expect(csp).toContain(directive);
      }
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).not.toContain('unsafe-eval');
      expect(res.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-store' });
    }
    // Only the listed files: nothing else of the folder (its tsconfig.json) and no path tricks.
    for (const url of ['/admin/console/', '/admin/console/tsconfig.json', '/admin/console/..%2Froutes%2Fconsole.ts', '/admin/console/index.html']) {
      expect((await admin.inject({ method: 'GET', url })).statusCode, url).toBe(401);
    }
    // The page is public; the API behind it is not.
    expect((await admin.inject({ method: 'GET', url: '/admin/users' })).statusCode).toBe(401);
  });

  it("an admin signs in and gets an access token that works on the admin API, and no refresh token", async () => {
    const res = await login(adminEmail);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['set-cookie']).toBeUndefined();
    const body = res.json() as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['access_token', 'expires_in', 'session_id', 'token_type']);
    expect(res.body).not.toContain('lk_rt_');
    const users = await admin.inject({ method: 'GET', url: `/admin/users/${adminId}`, headers: bearer(String(body.access_token)) });
    expect(users.statusCode).toBe(200);
    // An ordinary session, audited as a login.
    expect(t.events).toContainEqual({ type: 'login_succeeded', userId: adminId, sessionId: body.session_id });
    const sessions = await t.store.listSessions(adminId, t.clock.now());
    expect(sessions.map((s) => s.id)).toContain(body.session_id);
  });

  it('a non-admin with the right password gets the same answer as a wrong password, and no session', async () => {
    const plain = await register(t.app);
    const wrong = await login(adminEmail, 'not the password at all');
    const notAdmin = await login(plain.email);
    const unknown = await login('nobody-here@example.com');
    for (const res of [wrong, notAdmin, unknown]) {
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual(wrong.json());
    }
    expect(wrong.json()).toMatchObject({ error: 'invalid_credentials' });
    expect(await t.store.listSessions(plain.id, t.clock.now())).toEqual([]);
    expect(t.events).toContainEqual(expect.objectContaining({ type: 'login_failed', userId: plain.id, reason: 'not_admin' }));
  });

  it('a disabled admin cannot sign in', async () => {
    const a = await register(t.app);
    await t.store.setRoles(a.id, ['admin']);
    await t.app.latchkey.accounts.disable(a.id, NO_CONTEXT);
    expect((await login(a.email)).statusCode).toBe(401);
  });

  it('refuses a sign-in from another site before checking the password (Fetch Metadata)', async () => {
    const events = t.events.length;
    for (const site of ['cross-site', 'same-site']) {
      const res = await login(adminEmail, PASSWORD, { 'sec-fetch-site': site });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ error: 'forbidden' });
    }
    expect(t.events.slice(events)).toEqual([]);
    expect((await login(adminEmail, PASSWORD, { 'sec-fetch-site': 'same-origin' })).statusCode).toBe(200);
    // Forms cannot send JSON: what they can send is refused.
    const form = await admin.inject({
      method: 'POST',
      url: '/admin/console/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `email=${encodeURIComponent(adminEmail)}&password=${encodeURIComponent(PASSWORD)}`,
    });
    expect(form.statusCode).toBe(415);
    const text = await admin.inject({ method: 'POST', url: '/admin/console/login', headers: { 'content-type': 'text/plain' }, payload: JSON.stringify({ email: adminEmail, password: PASSWORD }) });
    expect(text.statusCode).toBe(415);
  });

  it('signing out revokes the session: the token stops working on both APIs at once', async () => {
    const token = String((await login(adminEmail)).json().access_token);
    expect((await admin.inject({ method: 'GET', url: '/admin/users', headers: bearer(token) })).statusCode).toBe(200);
    const out = await post(admin, '/admin/console/logout', undefined, bearer(token));
    expect(out.statusCode).toBe(204);
    expect((await admin.inject({ method: 'GET', url: '/admin/users', headers: bearer(token) })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(token) })).statusCode).toBe(401);
    expect((await post(admin, '/admin/console/logout', undefined, bearer(token))).statusCode).toBe(401);
    expect((await post(admin, '/admin/console/logout')).statusCode).toBe(401);
  });

  it('a demoted admin can still sign out of a session', async () => {
    const a = await register(t.app);
    await t.store.setRoles(a.id, ['admin']);
    const token = String((await login(a.email)).json().access_token);
    await t.store.setRoles(a.id, []);
    expect((await admin.inject({ method: 'GET', url: '/admin/users', headers: bearer(token) })).statusCode).toBe(403);
    expect((await post(admin, '/admin/console/logout', undefined, bearer(token))).statusCode).toBe(204);
    expect(await t.store.listSessions(a.id, t.clock.now())).toEqual([]);
  });

  it('the per-address login budget holds at the console too', async () => {
    const limited = await buildTestApp(kind, { LATCHKEY_LOGIN_RATE_LIMIT: '2' });
    const limitedAdmin = await buildTestAdmin(limited);
    try {
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push((await post(limitedAdmin, '/admin/console/login', { email: 'x@example.com', password: 'wrong password' })).statusCode);
      expect(answers).toEqual([401, 401, 429]);
      // Shared with the public /login: same address, same budget.
      expect((await post(limited.app, '/login', { email: 'x@example.com', password: 'wrong password' })).statusCode).toBe(429);
    } finally {
      await limitedAdmin.close();
      await limited.close();
    }
  });

  it('a token from the public /login works too (the console only needs an admin access token)', async () => {
    const { access } = await loginNative(t.app, adminEmail);
    expect((await admin.inject({ method: 'GET', url: '/admin/users', headers: bearer(access) })).statusCode).toBe(200);
  });
});

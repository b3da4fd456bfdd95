import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { buildTestApp, ORIGIN, type TestApp } from '../helpers/app.js';
import { bearer, loginBrowser, loginNative, PASSWORD, post, refreshBrowser, refreshCookie, register } from '../helpers/client.js';

const FOREIGN = 'https://evil.example';
const HYBRID = 'capacitor://localhost';

/** Every endpoint a page calls, with the method and request headers its preflight asks for. */
const browserCalls: Array<[method: string, url: string, headers: string]> = [
  ['POST', '/register', 'content-type'],
  ['POST', '/login', 'content-type'],
  ['POST', '/refresh', 'content-type'],
  ['POST', '/logout', 'authorization,content-type'],
  ['POST', '/logout-all', 'authorization'],
  ['GET', '/sessions', 'authorization'],
  ['DELETE', '/sessions/some-id', 'authorization'],
  ['GET', '/verify', 'authorization'],
];

const preflight = (t: TestApp, url: string, origin: string, method = 'POST', headers = 'content-type') =>
  t.app.inject({
    method: 'OPTIONS',
    url,
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
  });

const corsHeaders = (res: LightMyRequestResponse) => Object.keys(res.headers).filter((h) => h.startsWith('access-control-'));
const vary = (res: LightMyRequestResponse) => String(res.headers.vary ?? '').toLowerCase().split(/\s*,\s*/);

describe('CORS', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('memory', { LATCHKEY_NATIVE_ORIGINS: HYBRID });
  });
  afterAll(async () => t.close());

  it('answers the preflight of every endpoint a page calls, for an allowed origin', async () => {
    for (const [method, url, headers] of browserCalls) {
      const res = await preflight(t, url, ORIGIN, method, headers);
      expect(res.statusCode, `${method} ${url}`).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
      expect(res.headers['access-control-allow-credentials']).toBe('true');
      expect(String(res.headers['access-control-allow-methods']).split(/\s*,\s*/)).toContain(method);
      const allowedHeaders = String(res.headers['access-control-allow-headers']).toLowerCase().split(/\s*,\s*/);
      for (const h of headers.split(',')) expect(allowedHeaders).toContain(h);
      expect(res.headers['access-control-max-age']).toBe('600');
      expect(vary(res)).toContain('origin');
    }
  });

  it('echoes an allowed origin with credentials on answers, errors included, never "*"', async () => {
    const user = await register(t.app);
    const login = await post(t.app, '/login', { email: user.email, password: PASSWORD, client: 'browser' }, { origin: ORIGIN });
    const refused = await t.app.inject({ method: 'POST', url: '/refresh', headers: { origin: ORIGIN }, cookies: { [t.config.cookie.name]: 'lk_rt_nope' } });
    const sessions = await t.app.inject({ method: 'GET', url: '/sessions', headers: { origin: ORIGIN } });
    expect([login.statusCode, refused.statusCode, sessions.statusCode]).toEqual([200, 401, 401]);
    for (const res of [login, refused, sessions]) {
      expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
      expect(res.headers['access-control-allow-credentials']).toBe('true');
      expect(vary(res)).toContain('origin');
    }
    // A page must be able to read why a Bearer token was refused and when to retry.
    expect(String(sessions.headers['access-control-expose-headers']).toLowerCase()).toContain('www-authenticate');
    expect(String(sessions.headers['access-control-expose-headers']).toLowerCase()).toContain('retry-after');
  });

  it('gives a foreign origin no CORS header at all, and its preflight a 404 (forward auth: a 401, as for any method)', async () => {
    for (const [method, url, headers] of browserCalls) {
      const res = await preflight(t, url, FOREIGN, method, headers);
      // /verify answers every method, OPTIONS too, for gateways that forward the original request.
      expect(res.statusCode, `${method} ${url}`).toBe(url.startsWith('/verify') ? 401 : 404);
      expect(corsHeaders(res)).toEqual([]);
    }
    const user = await register(t.app);
    const login = await post(t.app, '/login', { email: user.email, password: PASSWORD, client: 'browser' }, { origin: FOREIGN });
    expect(login.statusCode).toBe(403);
    expect(corsHeaders(login)).toEqual([]);
    // The answer still varies by Origin, so a shared cache never hands it to an allowed origin.
    expect(vary(login)).toContain('origin');
    const jwks = await t.app.inject({ url: '/.well-known/jwks.json', headers: { origin: FOREIGN } });
    expect(corsHeaders(jwks)).toEqual([]);
  });

  it('adds nothing to a request without an Origin (native apps, servers)', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/healthz' });
    expect(corsHeaders(res)).toEqual([]);
    const bare = await t.app.inject({ method: 'OPTIONS', url: '/login' });
    expect(bare.statusCode).toBe(404);
    expect(corsHeaders(bare)).toEqual([]);
  });

  it('matches origins exactly: scheme, host and port', async () => {
    for (const origin of ['http://app.example.com', 'https://app.example.com:8443', 'https://app.example.com.evil.example', 'null']) {
      expect(corsHeaders(await preflight(t, '/refresh', origin)), origin).toEqual([]);
    }
  });

  it('a hybrid app origin from LATCHKEY_NATIVE_ORIGINS gets CORS but not the cookie', async () => {
    expect((await preflight(t, '/login', HYBRID)).headers['access-control-allow-origin']).toBe(HYBRID);
    const user = await register(t.app);
    const cookieLogin = await post(t.app, '/login', { email: user.email, password: PASSWORD, client: 'browser' }, { origin: HYBRID });
    expect(cookieLogin.statusCode).toBe(403);
  });
});

describe('the cookie endpoints refuse what the browser marks cross-site', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('memory');
  });
  afterAll(async () => t.close());
  const name = () => t.config.cookie.name;

  it('login, refresh and logout with Sec-Fetch-Site: cross-site are refused even from an allowed origin', async () => {
    const user = await register(t.app);
    const crossSite = { origin: ORIGIN, 'sec-fetch-site': 'cross-site' };
    const login = await post(t.app, '/login', { email: user.email, password: PASSWORD, client: 'browser' }, crossSite);
    expect(login.statusCode).toBe(403);
    expect(login.headers['set-cookie']).toBeUndefined();
    expect(await t.store.listSessions(user.id, t.clock.now())).toEqual([]);

    const browser = await loginBrowser(t.app, user.email, name());
    for (const url of ['/refresh', '/logout']) {
      const res = await t.app.inject({ method: 'POST', url, headers: crossSite, cookies: { [name()]: browser.cookie } });
      expect(res.statusCode, url).toBe(403);
      expect(res.json().error).toBe('forbidden');
    }
    // Nothing was spent or revoked.
    expect((await t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(browser.access) })).statusCode).toBe(200);
    expect((await refreshBrowser(t.app, name(), browser.cookie)).statusCode).toBe(200);
  });

  it('same-origin and same-site requests pass', async () => {
    const user = await register(t.app);
    for (const site of ['same-origin', 'same-site']) {
      const res = await post(t.app, '/login', { email: user.email, password: PASSWORD, client: 'browser' }, { origin: ORIGIN, 'sec-fetch-site': site });
      expect(res.statusCode, site).toBe(200);
      const cookie = refreshCookie(res, name())!.value;
      const refreshed = await t.app.inject({ method: 'POST', url: '/refresh', headers: { origin: ORIGIN, 'sec-fetch-site': site }, cookies: { [name()]: cookie } });
      expect(refreshed.statusCode, site).toBe(200);
    }
  });
});

describe('a request carrying a browser Origin never receives a refresh token in a body', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('memory', { LATCHKEY_NATIVE_ORIGINS: HYBRID });
  });
  afterAll(async () => t.close());

  it('a native login with an Origin, allowed or not, is a 400 naming client, and starts no session', async () => {
    const user = await register(t.app);
    for (const origin of [ORIGIN, FOREIGN, 'null']) {
      for (const body of [{ email: user.email, password: PASSWORD }, { email: user.email, password: PASSWORD, client: 'native' }]) {
        const res = await post(t.app, '/login', body, { origin });
        expect(res.statusCode, origin).toBe(400);
        expect(res.json().error).toBe('invalid_request');
        expect(res.json().error_description).toMatch(/^client: /);
        expect(res.body).not.toContain('lk_rt_');
      }
    }
    expect(await t.store.listSessions(user.id, t.clock.now())).toEqual([]);
  });

  it('a body refresh with an Origin is a 400, and the token is not spent', async () => {
    const user = await register(t.app);
    const native = await loginNative(t.app, user.email);
    const res = await post(t.app, '/refresh', { refresh_token: native.refresh }, { origin: ORIGIN });
    expect(res.statusCode).toBe(400);
    expect(res.json().error_description).toMatch(/^refresh_token: /);
    expect(res.body).not.toContain('lk_rt_');
    const ok = await post(t.app, '/refresh', { refresh_token: native.refresh });
    expect(ok.statusCode).toBe(200);
  });

  it('an origin in LATCHKEY_NATIVE_ORIGINS may log in and refresh natively', async () => {
    const user = await register(t.app);
    const login = await post(t.app, '/login', { email: user.email, password: PASSWORD }, { origin: HYBRID });
    expect(login.statusCode).toBe(200);
    const refresh = login.json().refresh_token as string;
    expect(refresh).toMatch(/^lk_rt_/);
    expect((await post(t.app, '/refresh', { refresh_token: refresh }, { origin: HYBRID })).statusCode).toBe(200);
  });

  it('LATCHKEY_NATIVE_ORIGINS takes scheme://host origins only', () => {
    expect(loadConfig({ LATCHKEY_NATIVE_ORIGINS: 'capacitor://localhost, ionic://localhost' }).nativeOrigins).toEqual([
      'capacitor://localhost',
      'ionic://localhost',
    ]);
    expect(loadConfig({}).nativeOrigins).toEqual([]);
    expect(() => loadConfig({ LATCHKEY_NATIVE_ORIGINS: 'capacitor://localhost/path' })).toThrow(ConfigError);
    expect(() => loadConfig({ LATCHKEY_NATIVE_ORIGINS: '*' })).toThrow(ConfigError);
  });
});

describe('CORS under a base path', () => {
  it('answers preflights under the prefix', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_BASE_PATH: '/auth' });
    try {
      const res = await preflight(t, '/auth/refresh', ORIGIN);
      expect(res.statusCode).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
      expect(corsHeaders(await preflight(t, '/auth/refresh', FOREIGN))).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

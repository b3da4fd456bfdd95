import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, ORIGIN, type TestApp } from '../helpers/app.js';
import { bearer, loginBrowser, loginNative, PASSWORD, post, uniqueEmail } from '../helpers/client.js';
import { assertMatchesSpec, documentedOperations } from '../support/openapi.js';

/** Real responses, checked against openapi.yaml: the spec describes what the service does. */
describe('responses match openapi.yaml', () => {
  let t: TestApp;
  const seen = new Set<string>();

  beforeAll(async () => {
    t = await buildTestApp('memory');
  });
  afterAll(async () => t.close());

  function check(method: string, path: string, res: LightMyRequestResponse) {
    assertMatchesSpec(method, path, { statusCode: res.statusCode, headers: res.headers, body: res.body });
    seen.add(`${method.toUpperCase()} ${path}`);
  }

  it('every operation, success and error responses', async () => {
    const email = uniqueEmail('spec');
    check('post', '/register', await post(t.app, '/register', { email, password: PASSWORD }));
    check('post', '/register', await post(t.app, '/register', { email, password: PASSWORD }));
    check('post', '/register', await post(t.app, '/register', { email }));
    check('post', '/register', await t.app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'text/plain' }, payload: 'x' }));
    check('post', '/register', await post(t.app, '/register', { email, password: 'x'.repeat(9000) }));

    const native = await loginNative(t.app, email);
    check('post', '/login', await post(t.app, '/login', { email, password: PASSWORD }));
    check('post', '/login', await post(t.app, '/login', { email, password: 'wrong-password' }));
    check('post', '/login', await post(t.app, '/login', { email, password: PASSWORD, client: 'browser' }));
    check('post', '/login', await post(t.app, '/login', { email, password: PASSWORD }, { origin: ORIGIN }));
    const browser = await loginBrowser(t.app, email, t.config.cookie.name);
    check('post', '/login', browser.res);

    const refreshed = await post(t.app, '/refresh', { refresh_token: native.refresh });
    check('post', '/refresh', refreshed);
    check('post', '/refresh', await post(t.app, '/refresh', { refresh_token: 'lk_rt_nope' }));
    check('post', '/refresh', await post(t.app, '/refresh', {}));
    check('post', '/refresh', await post(t.app, '/refresh', { refresh_token: native.refresh }, { origin: ORIGIN }));
    check('post', '/refresh', await t.app.inject({ method: 'POST', url: '/refresh', headers: { origin: 'https://evil.example' }, cookies: { [t.config.cookie.name]: browser.cookie } }));
    check('post', '/refresh', await t.app.inject({ method: 'POST', url: '/refresh', headers: { origin: ORIGIN }, cookies: { [t.config.cookie.name]: browser.cookie } }));

    const access = (refreshed.json() as { access_token: string }).access_token;
    check('get', '/sessions', await t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(access) }));
    check('get', '/sessions', await t.app.inject({ method: 'GET', url: '/sessions' }));
    check('delete', '/sessions/{id}', await t.app.inject({ method: 'DELETE', url: '/sessions/unknown', headers: bearer(access) }));
    check('delete', '/sessions/{id}', await t.app.inject({ method: 'DELETE', url: `/sessions/${browser.sessionId}`, headers: bearer(access) }));
    check('delete', '/sessions/{id}', await t.app.inject({ method: 'DELETE', url: '/sessions/x' }));

    check('post', '/logout', await post(t.app, '/logout', { refresh_token: native.refresh }, bearer(access)));
    check('post', '/logout', await post(t.app, '/logout', { nope: 1 }));
    const other = await loginNative(t.app, email);
    check('post', '/logout-all', await post(t.app, '/logout-all', undefined, bearer(other.access)));
    check('post', '/logout-all', await post(t.app, '/logout-all', undefined, bearer(other.access)));

    const fresh = await loginNative(t.app, email);
    check('get', '/verify', await t.app.inject({ method: 'GET', url: '/verify', headers: bearer(fresh.access) }));
    check('get', '/verify', await t.app.inject({ method: 'GET', url: '/verify' }));

    const form = (url: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
      t.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: new URLSearchParams(fields).toString() });
    for (const method of ['post', 'put', 'patch', 'delete'] as const) {
      check(method, '/verify', await t.app.inject({ method: method.toUpperCase() as 'POST', url: '/verify', headers: bearer(fresh.access) }));
      check(method, '/verify', await t.app.inject({ method: method.toUpperCase() as 'POST', url: '/verify' }));
    }
    for (const method of ['get', 'post', 'put', 'patch', 'delete'] as const) {
      check(method, '/verify/{path}', await t.app.inject({ method: method.toUpperCase() as 'POST', url: '/verify/orders/42', headers: bearer(fresh.access) }));
      check(method, '/verify/{path}', await t.app.inject({ method: method.toUpperCase() as 'POST', url: '/verify/orders/42' }));
    }

    const oauthLogin = await loginNative(t.app, email);
    const granted = await form('/token', { grant_type: 'refresh_token', refresh_token: oauthLogin.refresh });
    check('post', '/token', granted);
    check('post', '/token', await form('/token', { grant_type: 'refresh_token', refresh_token: 'lk_rt_nope' }));
    check('post', '/token', await form('/token', { grant_type: 'password', username: email, password: PASSWORD }));
    check('post', '/token', await form('/token', { grant_type: 'refresh_token', refresh_token: 'x', client_id: 'nobody' }));
    check('post', '/token', await post(t.app, '/token', { grant_type: 'refresh_token' }));
    check('post', '/token', await form('/token', { grant_type: 'refresh_token', refresh_token: 'x'.repeat(5000) }));
    const grantedAccess = (granted.json() as { access_token: string }).access_token;
    check('get', '/userinfo', await t.app.inject({ url: '/userinfo', headers: bearer(grantedAccess) }));
    check('get', '/userinfo', await t.app.inject({ url: '/userinfo' }));
    check('post', '/revoke', await form('/revoke', { token: grantedAccess, token_type_hint: 'access_token' }));
    check('post', '/revoke', await form('/revoke', { token: (granted.json() as { refresh_token: string }).refresh_token }));
    check('post', '/revoke', await form('/revoke', {}));
    check('post', '/revoke', await form('/revoke', { token: 'x', client_id: 'nobody' }));
    check('post', '/revoke', await post(t.app, '/revoke', { token: 'x' }));
    check('post', '/revoke', await form('/revoke', { token: 'x'.repeat(5000) }));

    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      const doc = await t.app.inject(path);
      check('get', path, doc);
      check('get', path, await t.app.inject({ url: path, headers: { 'if-none-match': String(doc.headers.etag) } }));
    }

    const jwks = await t.app.inject('/.well-known/jwks.json');
    check('get', '/.well-known/jwks.json', jwks);
    check('get', '/.well-known/jwks.json', await t.app.inject({ url: '/.well-known/jwks.json', headers: { 'if-none-match': String(jwks.headers.etag) } }));
    check('get', '/healthz', await t.app.inject('/healthz'));
    check('get', '/readyz', await t.app.inject('/readyz'));

    const documented = documentedOperations().map((o) => `${o.method.toUpperCase()} ${o.path}`);
    expect([...seen].sort()).toEqual(documented.sort());
  });

  it('registration disabled is documented too', async () => {
    const off = await buildTestApp('memory', { LATCHKEY_REGISTRATION: 'false' });
    try {
      const res = await post(off.app, '/register', { email: uniqueEmail(), password: PASSWORD });
      assertMatchesSpec('post', '/register', { statusCode: res.statusCode, headers: res.headers, body: res.body });
      expect(res.statusCode).toBe(403);
    } finally {
      await off.close();
    }
  });
});

import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, ORIGIN, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginBrowser, loginNative, post, refreshNative, register } from '../helpers/client.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

function form(t: TestApp, url: string, fields: Record<string, string> | string, headers: Record<string, string> = {}) {
  const payload = typeof fields === 'string' ? fields : new URLSearchParams(fields).toString();
  return t.app.inject({ method: 'POST', url, headers: { ...FORM, ...headers }, payload });
}

describe.each(storeKinds)('OAuth 2 endpoints (%s store)', (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp(kind, { LATCHKEY_CLIENTS: 'ios-app:native;web:browser:https://app.example.com' });
  });
  afterAll(async () => t.close());

  describe('POST /token (RFC 6749 §6)', () => {
    it('rotates a native refresh token like /refresh, with no-store and the RFC 6749 §5.1 fields', async () => {
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      const res = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: login.refresh });
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      const body = res.json();
      expect(body).toMatchObject({ token_type: 'Bearer', expires_in: expect.any(Number), session_id: login.sessionId });
      expect(body.refresh_token).toMatch(/^lk_rt_/);
      expect(body.refresh_token).not.toBe(login.refresh);
      expect(decodeJwt(body.access_token)).toMatchObject({ sub: user.id, sid: login.sessionId, client_id: 'latchkey-native' });
      // The presented token is spent: inside the grace window the same successor comes back …
      const again = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: login.refresh });
      expect(again.json().refresh_token).toBe(body.refresh_token);
      // … and once the successor has been used, presenting it is reuse, which revokes the whole session.
      t.clock.advance(11_000);
      const next = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: body.refresh_token });
      expect(next.statusCode).toBe(200);
      const reuse = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: login.refresh });
      expect(reuse.statusCode).toBe(400);
      expect(reuse.json()).toEqual({ error: 'invalid_grant', error_description: expect.any(String) });
      expect((await form(t, '/token', { grant_type: 'refresh_token', refresh_token: next.json().refresh_token })).statusCode).toBe(400);
      expect(t.events.some((e) => e.type === 'refresh_token_reused' && e.sessionId === login.sessionId)).toBe(true);
    });

    it('answers RFC 6749 §5.2 errors: invalid_grant 400, unsupported_grant_type, invalid_request', async () => {
      const bad = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: 'lk_rt_nope' });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error).toBe('invalid_grant');
      for (const grant of ['password', 'authorization_code', 'client_credentials']) {
        const res = await form(t, '/token', { grant_type: grant, username: 'a@example.com', password: 'x' });
        expect(res.statusCode).toBe(400);
        expect(res.json().error).toBe('unsupported_grant_type');
      }
      expect((await form(t, '/token', { refresh_token: 'lk_rt_x' })).json().error).toBe('invalid_request');
      expect((await form(t, '/token', { grant_type: 'refresh_token' })).json().error).toBe('invalid_request');
      const twice = await form(t, '/token', 'grant_type=refresh_token&refresh_token=a&refresh_token=b');
      expect(twice.statusCode).toBe(400);
      // A repeated parameter is named only if its name is plain: errors never echo what the client sent.
      const hostile = await form(t, '/token', 'grant_type=refresh_token&%3Cimg%20src%3Dx%3E=1&%3Cimg%20src%3Dx%3E=2');
      expect(hostile.statusCode).toBe(400);
      expect(hostile.body).not.toContain('<img');
      expect(twice.json().error).toBe('invalid_request');
    });

    it('takes only form-encoded bodies (JSON is a 415 here), and keeps the rest of the API JSON-only', async () => {
      const json = await post(t.app, '/token', { grant_type: 'refresh_token', refresh_token: 'lk_rt_x' });
      expect(json.statusCode).toBe(415);
      expect(json.json().error).toBe('unsupported_media_type');
      const formLogin = await form(t, '/login', { email: 'a@example.com', password: 'x' });
      expect(formLogin.statusCode).toBe(415);
      const formRefresh = await form(t, '/refresh', { refresh_token: 'lk_rt_x' });
      expect(formRefresh.statusCode).toBe(415);
    });

    it('never hands a refresh token to a browser: a request with an Origin is refused and the token stays good', async () => {
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      const res = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: login.refresh }, { origin: ORIGIN });
      expect(res.statusCode).toBe(400);
      expect(res.body).not.toContain('lk_rt_');
      expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(200);
    });

    it('refuses a cookie-channel refresh token (channel binding) and client authentication it does not support', async () => {
      const user = await register(t.app);
      const browser = await loginBrowser(t.app, user.email, t.config.cookie.name);
      const res = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: browser.cookie });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toBe('invalid_grant');
      const basic = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: 'lk_rt_x' }, { authorization: 'Basic aW9zOnNlY3JldA==' });
      expect(basic.statusCode).toBe(401);
      expect(basic.json().error).toBe('invalid_client');
      expect(basic.headers['www-authenticate']).toBe('Basic realm="latchkey"');
      const secret = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: 'lk_rt_x', client_id: 'ios-app', client_secret: 's' });
      expect(secret.statusCode).toBe(401);
    });

    it('a session remembers its client: client_id in every access token, and /token refuses another client', async () => {
      const user = await register(t.app);
      const res = await post(t.app, '/login', { email: user.email, password: user.password, client_id: 'ios-app' });
      expect(res.statusCode).toBe(200);
      const login = res.json();
      expect(decodeJwt(login.access_token).client_id).toBe('ios-app');
      const refreshed = (await refreshNative(t.app, login.refresh_token)).json();
      expect(decodeJwt(refreshed.access_token).client_id).toBe('ios-app');
      // Another client's id: refused before anything changes, so the token is still current.
      const wrong = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: refreshed.refresh_token, client_id: 'latchkey-native' });
      expect(wrong.statusCode).toBe(400);
      expect(wrong.json().error).toBe('invalid_grant');
      const unknown = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: refreshed.refresh_token, client_id: 'nobody' });
      expect(unknown.statusCode).toBe(401);
      expect(unknown.json().error).toBe('invalid_client');
      const right = await form(t, '/token', { grant_type: 'refresh_token', refresh_token: refreshed.refresh_token, client_id: 'ios-app' });
      expect(right.statusCode).toBe(200);
      expect(decodeJwt(right.json().access_token).client_id).toBe('ios-app');
    });

    it('login checks client_id against the registry: channel and origin', async () => {
      const user = await register(t.app);
      const login = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
        post(t.app, '/login', { email: user.email, password: user.password, ...body }, headers);
      expect((await login({ client_id: 'nobody' })).statusCode).toBe(400);
      expect((await login({ client_id: 'web' })).statusCode).toBe(400); // web is a browser client
      expect((await login({ client_id: 'ios-app', client: 'browser' }, { origin: ORIGIN })).statusCode).toBe(400);
      const web = await login({ client_id: 'web', client: 'browser' }, { origin: ORIGIN });
      expect(web.statusCode).toBe(200);
      expect(decodeJwt(web.json().access_token).client_id).toBe('web');
      const browserDefault = await login({ client: 'browser' }, { origin: ORIGIN });
      expect(decodeJwt(browserDefault.json().access_token).client_id).toBe('latchkey-browser');
    });
  });

  describe('POST /revoke (RFC 7009)', () => {
    it('a refresh token revokes its session, and verifiers hear of it', async () => {
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      const res = await form(t, '/revoke', { token: login.refresh, token_type_hint: 'refresh_token' });
      expect(res.statusCode).toBe(200);
      expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(401);
      expect((await t.app.inject({ url: '/verify', headers: bearer(login.access) })).statusCode).toBe(401);
      expect(t.events).toContainEqual({ type: 'session_revoked', userId: user.id, sessionId: login.sessionId, reason: 'logout' });
    });

    it('an access token is deny-listed; its session lives on', async () => {
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      const res = await form(t, '/revoke', { token: login.access, token_type_hint: 'access_token' });
      expect(res.statusCode).toBe(200);
      expect((await t.app.inject({ url: '/verify', headers: bearer(login.access) })).statusCode).toBe(401);
      const refreshed = await refreshNative(t.app, login.refresh);
      expect(refreshed.statusCode).toBe(200);
      expect((await t.app.inject({ url: '/verify', headers: bearer(refreshed.json().access_token) })).statusCode).toBe(200);
    });

    it('answers 200 for unknown, invalid and already revoked tokens, whatever the hint', async () => {
      for (const token of ['lk_rt_unknown', 'x.y.z', 'garbage', `lk_rt_${'A'.repeat(80)}`]) {
        expect((await form(t, '/revoke', { token, token_type_hint: 'refresh_token' })).statusCode).toBe(200);
      }
      expect((await form(t, '/revoke', { token: 'garbage', token_type_hint: 'something_else' })).statusCode).toBe(200);
      expect((await form(t, '/revoke', {})).json().error).toBe('invalid_request');
      expect((await form(t, '/revoke', { token: 'x', client_id: 'nobody' })).statusCode).toBe(401);
      expect((await post(t.app, '/revoke', { token: 'x' })).statusCode).toBe(415);
    });
  });

  describe('GET /userinfo', () => {
    it('answers the caller’s own sub, email and roles, and nothing it does not know', async () => {
      const user = await register(t.app);
      await t.store.setRoles(user.id, ['ops']);
      const login = await loginNative(t.app, user.email);
      const res = await t.app.inject({ url: '/userinfo', headers: bearer(login.access) });
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.json()).toEqual({ sub: user.id, email: user.email, roles: ['ops'] });
    });

    it('401 with a Bearer challenge without a token, or once the token is revoked', async () => {
      const none = await t.app.inject({ url: '/userinfo' });
      expect(none.statusCode).toBe(401);
      expect(none.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      await form(t, '/revoke', { token: login.refresh });
      expect((await t.app.inject({ url: '/userinfo', headers: bearer(login.access) })).statusCode).toBe(401);
    });
  });
});

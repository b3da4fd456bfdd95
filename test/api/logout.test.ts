import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { RedisStore } from '../../src/store/redis-store.js';
import { buildTestApp, ORIGIN, storeKinds, type TestApp } from '../helpers/app.js';
import { testRedisUrl } from '../support/redis.js';
import { bearer, loginBrowser, loginNative, post, refreshNative, register } from '../helpers/client.js';

describe.each(storeKinds)('logout, logout-all and sessions (%s store)', (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp(kind);
  });
  afterAll(async () => t.close());

  const get = (url: string, access: string) => t.app.inject({ method: 'GET', url, headers: bearer(access) });

  it('logout revokes the session, deny-lists the presented access token and clears the cookie; twice is fine', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const other = await loginNative(t.app, user.email);
    const res = await post(t.app, '/logout', { refresh_token: login.refresh }, bearer(login.access));
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect(String(res.headers['set-cookie'])).toMatch(/^__Host-lk_rt=;.*Max-Age=0/);
    expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(401);
    expect((await get('/sessions', login.access)).statusCode).toBe(401);
    expect(t.events).toContainEqual(expect.objectContaining({ type: 'access_token_denied', jti: decodeJwt(login.access).jti }));
    // The user's other session is untouched.
    expect((await get('/sessions', other.access)).statusCode).toBe(200);
    const again = await post(t.app, '/logout', { refresh_token: login.refresh }, bearer(login.access));
    expect(again.statusCode).toBe(204);
  });

  it('a deny-listed access token stays refused even while its session lives on', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const refreshed = (await refreshNative(t.app, login.refresh)).json();
    // Log out with only the old access token: its jti is deny-listed, the session is not touched.
    expect((await post(t.app, '/logout', undefined, bearer(login.access))).statusCode).toBe(204);
    expect((await get('/sessions', login.access)).statusCode).toBe(401);
    expect((await get('/sessions', refreshed.access_token)).statusCode).toBe(200);
  });

  it('a logged-out access token does not come back after exp while checkers still accept it (exp + clock skew)', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const { exp, jti } = decodeJwt(login.access) as { exp: number; jti: string };
    // Bearer only: the jti is deny-listed, the session lives on.
    expect((await post(t.app, '/logout', undefined, bearer(login.access))).statusCode).toBe(204);
    if (kind === 'redis') {
      // Redis expires the entry on its own clock: it must outlive exp + skew measured from now.
      const prefix = (t.store as RedisStore).keyPrefix;
      const raw = new Redis(testRedisUrl());
      try {
        const pttl = await raw.pttl(`${prefix}{${user.id}}:j:${jti}`);
        expect(pttl).toBeGreaterThan((exp + t.config.clockSkew) * 1000 - Date.now());
      } finally {
        raw.disconnect();
      }
    }
    // From just after exp to the end of the skew the signature and claims still pass; the deny-list must hold.
    t.clock.advance(exp * 1000 - t.clock.now() + 400);
    for (const step of [0, 2000, 2000]) {
      t.clock.advance(step);
      const res = await t.app.inject({ url: '/verify', headers: bearer(login.access) });
      expect(res.statusCode, `at exp + ${t.clock.now() - exp * 1000} ms`).toBe(401);
    }
    expect(t.clock.now()).toBeLessThan((exp + t.config.clockSkew) * 1000);
  });

  it('logout never touches another user’s session, even when named by a forged token', async () => {
    const alice = await register(t.app);
    const a = await loginNative(t.app, alice.email);
    const forged = a.refresh.replace(/\.[A-Za-z0-9_-]{43}\./, `.${'B'.repeat(43)}.`);
    expect((await post(t.app, '/logout', { refresh_token: forged })).statusCode).toBe(204);
    expect((await refreshNative(t.app, a.refresh)).statusCode).toBe(200);
  });

  it('logout with one user’s access token and another user’s refresh token is refused and revokes nothing', async () => {
    const alice = await register(t.app);
    const bob = await register(t.app);
    const a = await loginNative(t.app, alice.email);
    const b = await loginNative(t.app, bob.email);
    const res = await post(t.app, '/logout', { refresh_token: a.refresh }, bearer(b.access));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'invalid_request' });
    expect((await refreshNative(t.app, a.refresh)).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(b.access) })).statusCode).toBe(200);
  });

  it('cookie logout checks the Origin and clears the cookie', async () => {
    const user = await register(t.app);
    const name = t.config.cookie.name;
    const browser = await loginBrowser(t.app, user.email, name);
    const foreign = await t.app.inject({ method: 'POST', url: '/logout', headers: { origin: 'https://evil.example' }, cookies: { [name]: browser.cookie } });
    expect(foreign.statusCode).toBe(403);
    expect((await get('/sessions', browser.access)).statusCode).toBe(200);
    const res = await t.app.inject({ method: 'POST', url: '/logout', headers: { origin: ORIGIN }, cookies: { [name]: browser.cookie } });
    expect(res.statusCode).toBe(204);
    expect((await get('/sessions', browser.access)).statusCode).toBe(401);
  });

  it('logout-all revokes every session and access token, yet a login in the same second works', async () => {
    const user = await register(t.app);
    const sessions = [await loginNative(t.app, user.email), await loginNative(t.app, user.email)];
    const res = await post(t.app, '/logout-all', undefined, bearer(sessions[0]!.access));
    expect(res.statusCode).toBe(204);
    for (const s of sessions) {
      expect((await get('/sessions', s.access)).statusCode).toBe(401);
      expect((await refreshNative(t.app, s.refresh)).statusCode).toBe(401);
    }
    // Same instant (the test clock has not moved): iat equals the revocation second.
    const fresh = await loginNative(t.app, user.email);
    expect(decodeJwt(fresh.access).iat).toBe(Math.floor(t.clock.now() / 1000));
    const list = await get('/sessions', fresh.access);
    expect(list.statusCode).toBe(200);
    expect(list.json()).toHaveLength(1);
    expect((await refreshNative(t.app, fresh.refresh)).statusCode).toBe(200);
  });

  it('logout-all needs a valid, unrevoked Bearer token', async () => {
    const res = await post(t.app, '/logout-all');
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toBe('invalid_token');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
  });

  it('lists the user’s own sessions with the current one marked', async () => {
    const user = await register(t.app);
    const first = await loginNative(t.app, user.email, undefined, { 'user-agent': 'phone/1.0' });
    t.clock.advanceSeconds(1);
    const second = await loginNative(t.app, user.email, undefined, { 'user-agent': 'laptop/2.0' });
    const someoneElse = await register(t.app);
    await loginNative(t.app, someoneElse.email);
    const res = await get('/sessions', first.access);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const list = res.json() as Array<Record<string, unknown>>;
    expect(list.map((s) => s.id)).toEqual([second.sessionId, first.sessionId]);
    expect(list[0]).toMatchObject({ user_agent: 'laptop/2.0', current: false, ip: '127.0.0.1' });
    expect(list[1]).toMatchObject({ user_agent: 'phone/1.0', current: true });
    for (const s of list) {
      expect(Object.keys(s).sort()).toEqual(['created_at', 'current', 'expires_at', 'id', 'ip', 'last_used_at', 'user_agent']);
      expect(Date.parse(String(s.expires_at))).toBeGreaterThan(Date.parse(String(s.created_at)));
    }
  });

  it('deletes one of the user’s own sessions; another user’s or an unknown id is 404', async () => {
    const alice = await register(t.app);
    const bob = await register(t.app);
    const a1 = await loginNative(t.app, alice.email);
    const a2 = await loginNative(t.app, alice.email);
    const b1 = await loginNative(t.app, bob.email);
    const steal = await t.app.inject({ method: 'DELETE', url: `/sessions/${b1.sessionId}`, headers: bearer(a1.access) });
    expect(steal.statusCode).toBe(404);
    expect(steal.json().error).toBe('not_found');
    expect((await get('/sessions', b1.access)).statusCode).toBe(200);
    const unknown = await t.app.inject({ method: 'DELETE', url: '/sessions/does-not-exist', headers: bearer(a1.access) });
    expect(unknown.statusCode).toBe(404);
    const ok = await t.app.inject({ method: 'DELETE', url: `/sessions/${a2.sessionId}`, headers: bearer(a1.access) });
    expect(ok.statusCode).toBe(204);
    expect((await refreshNative(t.app, a2.refresh)).statusCode).toBe(401);
    expect((await get('/sessions', a2.access)).statusCode).toBe(401);
    expect((await get('/sessions', a1.access)).statusCode).toBe(200);
  });

  it('an access token expires after 15 minutes', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    t.clock.advanceSeconds(900 + t.config.clockSkew + 1);
    expect((await get('/sessions', login.access)).statusCode).toBe(401);
  });
});

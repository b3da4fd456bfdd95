import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/errors.js';
import type { RotateRequest } from '../../src/store/store.js';
import { buildTestApp, createTestStore, ORIGIN, storeKinds, type TestApp } from '../helpers/app.js';
import {
  bearer,
  loginBrowser,
  loginNative,
  post,
  refreshBrowser,
  refreshCookie,
  refreshNative,
  register,
} from '../helpers/client.js';

describe.each(storeKinds)('refresh (%s store)', (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp(kind);
  });
  afterAll(async () => t.close());

  const sessionsWith = (access: string) => t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(access) });

  it('rotates: the answer carries a new refresh token and a fresh access token for the same session', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    t.clock.advanceSeconds(60);
    const res = await refreshNative(t.app, login.refresh);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body.refresh_token).toMatch(/^lk_rt_/);
    expect(body.refresh_token).not.toBe(login.refresh);
    expect(body.session_id).toBe(login.sessionId);
    expect(decodeJwt(body.access_token)).toMatchObject({ sid: login.sessionId, sub: user.id });
    expect(decodeJwt(body.access_token).jti).not.toBe(decodeJwt(login.access).jti);
  });

  it('within the grace window the just-spent token returns the same successor', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const first = (await refreshNative(t.app, login.refresh)).json();
    t.clock.advanceSeconds(9);
    const again = await refreshNative(t.app, login.refresh);
    expect(again.statusCode).toBe(200);
    expect(again.json().refresh_token).toBe(first.refresh_token);
    expect(again.json().access_token).not.toBe(first.access_token);
    expect((await refreshNative(t.app, first.refresh_token)).statusCode).toBe(200);
  });

  it('reuse of a spent token after its successor was used revokes the whole session and its access tokens, and reports it', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const next = (await refreshNative(t.app, login.refresh)).json();
    expect((await sessionsWith(next.access_token)).statusCode).toBe(200);
    t.clock.advanceSeconds(11);
    const later = (await refreshNative(t.app, next.refresh_token)).json();
    const reuse = await refreshNative(t.app, login.refresh);
    expect(reuse.statusCode).toBe(401);
    expect(reuse.json()).toEqual({ error: 'invalid_grant', error_description: expect.any(String) });
    // The whole family is gone: the current token, and every access token carrying the session id.
    expect((await refreshNative(t.app, later.refresh_token)).statusCode).toBe(401);
    for (const access of [login.access, next.access_token, later.access_token]) {
      const res = await sessionsWith(access);
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    }
    expect(t.events).toContainEqual(
      expect.objectContaining({ type: 'refresh_token_reused', userId: user.id, sessionId: login.sessionId }),
    );
  });

  it('a malformed, forged or unknown token is invalid_grant with no detail', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const forged = login.refresh.replace(/\.[A-Za-z0-9_-]{43}\./, `.${'A'.repeat(43)}.`);
    const bodies = new Set<string>();
    for (const token of ['nope', `lk_rt_${'x'.repeat(120)}`, forged]) {
      const res = await refreshNative(t.app, token);
      expect(res.statusCode).toBe(401);
      bodies.add(res.body);
    }
    expect(bodies.size).toBe(1);
    // The forged token named a real session, yet it was not revoked.
    expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(200);
  });

  it('an idle refresh token expires after 7 days', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    t.clock.advanceSeconds(7 * 86400);
    expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(401);
  });

  it('refreshing never extends a session beyond its absolute lifetime', async () => {
    const user = await register(t.app);
    let token = (await loginNative(t.app, user.email)).refresh;
    let elapsed = 0;
    let last = 0;
    while (elapsed < 31 * 86400) {
      t.clock.advanceSeconds(6 * 86400);
      elapsed += 6 * 86400;
      const res = await refreshNative(t.app, token);
      if (res.statusCode !== 200) break;
      const body = res.json();
      expect(elapsed + body.refresh_expires_in).toBeLessThanOrEqual(30 * 86400);
      expect(decodeJwt(body.access_token).exp! * 1000).toBeLessThanOrEqual(t.clock.now() + 900_000);
      token = body.refresh_token;
      last = elapsed;
    }
    expect(last).toBe(24 * 86400);
    expect(elapsed).toBe(30 * 86400);
  });

  describe('browser channel', () => {
    const name = () => t.config.cookie.name;

    it('refreshes from the cookie and answers with a new cookie, never a body token', async () => {
      const user = await register(t.app);
      const login = await loginBrowser(t.app, user.email, name());
      const res = await refreshBrowser(t.app, name(), login.cookie);
      expect(res.statusCode).toBe(200);
      expect(res.json()).not.toHaveProperty('refresh_token');
      const next = refreshCookie(res, name());
      expect(next?.value).toMatch(/^lk_rt_/);
      expect(next?.value).not.toBe(login.cookie);
      expect(next).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    });

    it('a cookie token is refused in a body, and a body token in a cookie', async () => {
      const user = await register(t.app);
      const browser = await loginBrowser(t.app, user.email, name());
      const native = await loginNative(t.app, user.email);
      expect((await refreshNative(t.app, browser.cookie)).statusCode).toBe(401);
      expect((await refreshBrowser(t.app, name(), native.refresh)).statusCode).toBe(401);
      // Neither attempt spent anything.
      expect((await refreshBrowser(t.app, name(), browser.cookie)).statusCode).toBe(200);
      expect((await refreshNative(t.app, native.refresh)).statusCode).toBe(200);
    });

    it('a request carrying both a cookie and a body token is a 400', async () => {
      const user = await register(t.app);
      const browser = await loginBrowser(t.app, user.email, name());
      const res = await t.app.inject({
        method: 'POST',
        url: '/refresh',
        headers: { origin: ORIGIN, 'content-type': 'application/json' },
        cookies: { [name()]: browser.cookie },
        payload: JSON.stringify({ refresh_token: browser.cookie }),
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toBe('invalid_request');
      expect(res.json().error_description).toContain('refresh_token');
    });

    it('a cookie refresh from a missing or foreign Origin is refused before the token is spent', async () => {
      const user = await register(t.app);
      const browser = await loginBrowser(t.app, user.email, name());
      for (const origin of ['https://evil.example', '']) {
        const res = await t.app.inject({
          method: 'POST',
          url: '/refresh',
          headers: origin ? { origin } : {},
          cookies: { [name()]: browser.cookie },
        });
        expect(res.statusCode).toBe(403);
        expect(res.json().error).toBe('forbidden');
      }
      const ok = await refreshBrowser(t.app, name(), browser.cookie);
      expect(ok.statusCode).toBe(200);
      expect(refreshCookie(ok, name())?.value).not.toBe(browser.cookie);
    });

    it('without any token the request is a 400 naming refresh_token', async () => {
      const res = await post(t.app, '/refresh', {});
      expect(res.statusCode).toBe(400);
      expect(res.json().error_description).toContain('refresh_token');
    });
  });
});

describe.each(storeKinds)('a lost reply (%s store)', (kind) => {
  it('a client that got a 503 after the rotation ran, and retries long after the grace window, keeps its session', async () => {
    const { store, dispose } = await createTestStore(kind, 'lost-reply');
    // The rotation runs, then the reply is lost on the way back (a proxy or connection drop): 503.
    let loseNext = false;
    const lossy = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop !== 'rotate') return Reflect.get(target, prop, receiver) as unknown;
        return async (request: RotateRequest) => {
          const result = await target.rotate(request);
          if (loseNext) {
            loseNext = false;
            throw new StoreUnavailableError('reply lost');
          }
          return result;
        };
      },
    });
    const t = await buildTestApp(kind, {}, { store: lossy });
    try {
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      loseNext = true;
      expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(503);
      t.clock.advanceSeconds(12 * 60);
      const retry = await refreshNative(t.app, login.refresh);
      expect(retry.statusCode).toBe(200);
      const again = await refreshNative(t.app, login.refresh);
      expect(again.json().refresh_token).toBe(retry.json().refresh_token);
      t.clock.advanceSeconds(60);
      const next = await refreshNative(t.app, retry.json().refresh_token);
      expect(next.statusCode).toBe(200);
      // Its successor has been used: the spent token is theft now.
      expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(401);
      expect((await refreshNative(t.app, next.json().refresh_token)).statusCode).toBe(401);
      expect(t.events).toContainEqual(expect.objectContaining({ type: 'refresh_token_reused', sessionId: login.sessionId }));
    } finally {
      await t.close();
      await dispose();
    }
  });
});

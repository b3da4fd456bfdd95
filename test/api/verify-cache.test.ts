import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_CONTEXT } from '../../src/audit/context.js';
import { buildTestApp, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, post, register } from '../helpers/client.js';
import { forgeries } from '../helpers/forged-tokens.js';

/**
 * GET /verify answers a token it decided before from memory (src/tokens/decided-tokens.ts). These tests
 * pin what that memory may never change: forged tokens are refused like on the full path, whether or not
 * the genuine token is cached, and a revocation made on this instance is refused as soon as the revoking
 * call has returned.
 */
describe.each(storeKinds)('GET /verify with remembered decisions (%s store)', (kind) => {
  let t: TestApp;
  let storeChecks = 0;
  beforeAll(async () => {
    t = await buildTestApp(kind);
    const original = t.store.isAccessTokenActive.bind(t.store);
    t.store.isAccessTokenActive = (...args) => {
      storeChecks++;
      return original(...args);
    };
  });
  afterAll(async () => t.close());

  const verify = (token: string) => t.app.inject({ url: '/verify', headers: bearer(token) });

  /** Verifies until a call no longer asks the store: the token is cached (Redis: once the stream is read). */
  async function cached(token: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      expect((await verify(token)).statusCode).toBe(200);
      const before = storeChecks;
      expect((await verify(token)).statusCode).toBe(200);
      if (storeChecks === before) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the token was never answered from memory');
  }

  it('a hot token costs no store call; its headers are the same as on first sight', async () => {
    const user = await register(t.app);
    await t.store.setRoles(user.id, ['ops']);
    const login = await loginNative(t.app, user.email);
    const checksBefore = storeChecks;
    const first = await verify(login.access);
    // First sight asks the store (through the counted method), so a count that stays still below means something.
    expect(storeChecks).toBeGreaterThan(checksBefore);
    await cached(login.access);
    const before = storeChecks;
    for (let i = 0; i < 50; i++) {
      const res = await verify(login.access);
      expect(res.statusCode).toBe(200);
      expect(res.headers).toMatchObject({
        'x-user-id': user.id,
        'x-user-roles': 'ops',
        'x-session-id': login.sessionId,
        'x-revocation-checked': 'true',
      });
    }
    expect(storeChecks).toBe(before);
    expect(first.headers['x-user-id']).toBe(user.id);
  });

  it('forged tokens are refused before and after the genuine token is cached, and never cached themselves', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const signer = t.app.latchkey.keys.signer(t.clock.now())!;
    const forged = forgeries(login.access, signer.privateKey);
    for (const [name, token] of Object.entries(forged)) expect([name, (await verify(token)).statusCode]).toEqual([name, 401]);
    await cached(login.access);
    for (let round = 0; round < 2; round++) {
      for (const [name, token] of Object.entries(forged)) expect([name, (await verify(token)).statusCode]).toEqual([name, 401]);
    }
    expect((await verify(login.access)).statusCode).toBe(200);
  });

  it('a cached token expires with exp + skew, not later', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    await cached(login.access);
    t.clock.advanceSeconds(t.config.accessTokenTtl + t.config.clockSkew + 1);
    expect((await verify(login.access)).statusCode).toBe(401);
  });

  describe('a revocation made here is refused as soon as the revoking call returned, though the token was cached', () => {
    async function cachedLogin() {
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      await cached(login.access);
      return { user, login };
    }

    it('logout (session)', async () => {
      const { login } = await cachedLogin();
      expect((await post(t.app, '/logout', { refresh_token: login.refresh })).statusCode).toBe(204);
      expect((await verify(login.access)).statusCode).toBe(401);
    });

    it('logout with only the access token (its jti deny-listed)', async () => {
      const { login } = await cachedLogin();
      expect((await post(t.app, '/logout', undefined, bearer(login.access))).statusCode).toBe(204);
      expect((await verify(login.access)).statusCode).toBe(401);
    });

    it('DELETE /sessions/{id}', async () => {
      const { user, login } = await cachedLogin();
      const other = await loginNative(t.app, user.email);
      const res = await t.app.inject({ method: 'DELETE', url: `/sessions/${login.sessionId}`, headers: bearer(other.access) });
      expect(res.statusCode).toBe(204);
      expect((await verify(login.access)).statusCode).toBe(401);
      expect((await verify(other.access)).statusCode).toBe(200);
    });

    it('logout-all', async () => {
      const { user, login } = await cachedLogin();
      const second = await loginNative(t.app, user.email);
      await cached(second.access);
      expect((await post(t.app, '/logout-all', undefined, bearer(second.access))).statusCode).toBe(204);
      expect((await verify(login.access)).statusCode).toBe(401);
      expect((await verify(second.access)).statusCode).toBe(401);
    });

    it('refresh-token reuse', async () => {
      const { login } = await cachedLogin();
      const rotated = await post(t.app, '/refresh', { refresh_token: login.refresh });
      expect(rotated.statusCode).toBe(200);
      t.clock.advanceSeconds(t.config.refreshGrace + 1);
      // The successor is used, so the spent token presented again is theft (not a retry after a lost reply).
      expect((await post(t.app, '/refresh', { refresh_token: (rotated.json() as { refresh_token: string }).refresh_token })).statusCode).toBe(200);
      expect((await post(t.app, '/refresh', { refresh_token: login.refresh })).statusCode).toBe(401);
      expect((await verify(login.access)).statusCode).toBe(401);
    });

    it('the account disabled', async () => {
      const { user, login } = await cachedLogin();
      await t.app.latchkey.accounts.disable(user.id, NO_CONTEXT);
      expect((await verify(login.access)).statusCode).toBe(401);
    });
  });
});

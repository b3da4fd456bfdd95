import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, createTestStore, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, post, refreshNative, register } from '../helpers/client.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

/**
 * A Redis this test owns, stopped and started under the app. While it is gone, every endpoint that
 * issues or revokes answers 503 with Retry-After — never a token that was not stored, never
 * invalid_grant, never "not revoked" — and the app recovers by itself when Redis is back.
 */
describe('when Redis goes away', () => {
  let redis: RedisServerHandle;
  let t: TestApp;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    redis = await startRedisServer({ appendonly: true });
    const test = await createTestStore('redis', 'outage', redis.url);
    dispose = test.dispose;
    t = await buildTestApp('redis', {}, { store: test.store });
  });
  afterAll(async () => {
    await t.close();
    await dispose();
    await redis.stop();
  });

  const expect503 = (res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }) => {
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  };

  async function waitUntilReady() {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if ((await t.app.inject('/readyz')).statusCode === 200) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('app did not become ready again');
  }

  it('answers 503 everywhere state is needed, keeps JWKS up, and recovers with nothing lost', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const unavailable = async () =>
      Number(/^latchkey_unavailable_total\{reason="store"\} (\d+)$/m.exec(await t.app.latchkey.metrics.registry.metrics())?.[1] ?? 0);
    const before = await unavailable();
    await redis.kill();

    expect503(await refreshNative(t.app, login.refresh));
    expect503(await post(t.app, '/login', { email: user.email, password: user.password }));
    expect503(await post(t.app, '/register', { email: `x-${Date.now()}@example.com`, password: user.password }));
    expect503(await post(t.app, '/logout', { refresh_token: login.refresh }, bearer(login.access)));
    expect503(await post(t.app, '/logout-all', undefined, bearer(login.access)));
    expect503(await t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(login.access) }));
    expect503(await t.app.inject({ method: 'GET', url: '/verify', headers: bearer(login.access) }));
    expect503(await t.app.inject('/readyz'));
    expect((await t.app.inject('/.well-known/jwks.json')).statusCode).toBe(200);
    expect((await t.app.inject('/healthz')).statusCode).toBe(200);
    // Operators see it: every 503 above that came from the store is counted (readyz answers its own).
    expect((await unavailable()) - before).toBeGreaterThanOrEqual(7);

    await redis.restart();
    await waitUntilReady();
    // The refresh token was never spent by the failed attempt: it still rotates normally.
    const res = await refreshNative(t.app, login.refresh);
    expect(res.statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(res.json().access_token) })).statusCode).toBe(200);
  });

  it('a hung Redis turns into 503 within the command timeout, then recovers', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    await redis.pause();
    try {
      const started = Date.now();
      expect503(await refreshNative(t.app, login.refresh));
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await redis.resume();
    }
    await waitUntilReady();
    const res = await refreshNative(t.app, login.refresh);
    // Either the timed-out rotation never ran (200 with a rotation now) or it ran after the reply was
    // lost; then the token is the just-spent one and the grace window hands over the same successor.
    expect(res.statusCode).toBe(200);
  });

  it('forward auth may fail open for a configured window only', async () => {
    const other = await createTestStore('redis', 'outage-open', redis.url);
    const open = await buildTestApp('redis', { LATCHKEY_VERIFY_FAIL_OPEN: '2' }, { store: other.store, clock: Date.now });
    try {
      const user = await register(open.app);
      const login = await loginNative(open.app, user.email);
      expect((await open.app.inject({ url: '/verify', headers: bearer(login.access) })).headers['x-revocation-checked']).toBe('true');
      await redis.kill();
      // A token already decided may be answered from memory until the instance notices the connection
      // is gone (the next event-loop turns; at most the 2 s the revocation stream may be silent): revocation
      // state is then still as known a moment ago. From then on: fail open, and say so.
      const deadline = Date.now() + 3000;
      let during = await open.app.inject({ url: '/verify', headers: bearer(login.access) });
      while (during.headers['x-revocation-checked'] === 'true' && Date.now() < deadline) {
        expect(during.statusCode).toBe(200);
        await new Promise((r) => setTimeout(r, 20));
        during = await open.app.inject({ url: '/verify', headers: bearer(login.access) });
      }
      expect(during.statusCode).toBe(200);
      expect(during.headers['x-revocation-checked']).toBe('false');
      // A bad signature is refused whatever the store does.
      expect((await open.app.inject({ url: '/verify', headers: bearer(login.access.slice(0, -4) + 'AAAA') })).statusCode).toBe(401);
      await new Promise((r) => setTimeout(r, 2100));
      expect503(await open.app.inject({ url: '/verify', headers: bearer(login.access) }));
    } finally {
      await redis.restart();
      await open.close();
      await other.dispose();
    }
  });
});

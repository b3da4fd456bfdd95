import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { PasswordHasher } from '../../src/accounts/passwords.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { buildTestApp, silentLogger, storeKinds, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, PASSWORD, post, register, uniqueEmail } from '../helpers/client.js';
import { startRedisServer } from '../support/redis-server.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../support/redis.js';

const ADDRESSES = ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4', '203.0.113.5'];

/** Production-like limits; the helper's defaults turn them all up. Behind one trusted proxy (127.0.0.1). */
const LIMITS = {
  TRUST_PROXY: '127.0.0.1',
  LATCHKEY_LOGIN_RATE_LIMIT: '30',
  LATCHKEY_ACCOUNT_RATE_LIMIT: '10',
  LATCHKEY_ACCOUNT_RATE_WINDOW: '900',
  LATCHKEY_GLOBAL_LOGIN_RATE_LIMIT: '100000',
};

const from = (ip: string) => ({ 'x-forwarded-for': ip });

function expect429(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }) {
  expect(res.statusCode).toBe(429);
  expect(res.json()).toEqual({ error: 'rate_limited', error_description: expect.any(String) });
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
}

afterEach(() => vi.restoreAllMocks());

describe.each(storeKinds)('login throttles (%s store)', (kind) => {
  const apps: TestApp[] = [];
  afterAll(async () => Promise.all(apps.map((a) => a.close())));
  const build = async (env: Record<string, string> = {}) => {
    const t = await buildTestApp(kind, { ...LIMITS, ...env });
    apps.push(t);
    return t;
  };

  it('110 wrong passwords from 5 addresses: refused after the account budget, before argon2; the right password then gets the same 429', async () => {
    const t = await build();
    const user = await register(t.app);
    const verify = vi.spyOn(PasswordHasher.prototype, 'verify');
    const statuses: number[] = [];
    for (let i = 0; i < 110; i++) {
      const ip = ADDRESSES[i % ADDRESSES.length]!;
      statuses.push((await post(t.app, '/login', { email: user.email, password: `wrong-${i}` }, from(ip))).statusCode);
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual(Array(100).fill(429));
    // The refused attempts never reached a password hash.
    expect(verify).toHaveBeenCalledTimes(10);

    // The right password, from a fresh address, and in another spelling of the same e-mail.
    const right = await post(t.app, '/login', { email: ` ${user.email.toUpperCase()} `, password: PASSWORD }, from('198.51.100.7'));
    expect429(right);
    expect(verify).toHaveBeenCalledTimes(10);

    // Other accounts are untouched.
    const other = await register(t.app);
    expect((await post(t.app, '/login', { email: other.email, password: PASSWORD }, from(ADDRESSES[0]!))).statusCode).toBe(200);
  });

  it('an unknown account is throttled exactly like a known one', async () => {
    const t = await build({ LATCHKEY_ACCOUNT_RATE_LIMIT: '2' });
    const email = uniqueEmail('nobody');
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(t.app, '/login', { email, password: 'wrong-password' }, from(ADDRESSES[i]!))).statusCode);
    expect(statuses).toEqual([401, 401, 429]);
  });

  it('the account budget comes back after its window: never a permanent lock-out', async () => {
    const t = await build({ LATCHKEY_ACCOUNT_RATE_LIMIT: '2', LATCHKEY_ACCOUNT_RATE_WINDOW: '1' });
    const user = await register(t.app);
    for (let i = 0; i < 5; i++) await post(t.app, '/login', { email: user.email, password: 'wrong-password' }, from(ADDRESSES[i]!));
    expect429(await post(t.app, '/login', { email: user.email, password: PASSWORD }));
    const deadline = Date.now() + 10_000;
    let status = 429;
    while (status === 429 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await post(t.app, '/login', { email: user.email, password: PASSWORD })).statusCode;
    }
    expect(status).toBe(200);
  });

  it('successful logins give their point back: only failures count', async () => {
    const t = await build({ LATCHKEY_ACCOUNT_RATE_LIMIT: '3' });
    const user = await register(t.app);
    for (let i = 0; i < 6; i++) await loginNative(t.app, user.email);
    expect((await post(t.app, '/login', { email: user.email, password: 'wrong-password' })).statusCode).toBe(401);
    expect((await post(t.app, '/login', { email: user.email, password: PASSWORD })).statusCode).toBe(200);
  });

  it('a global ceiling holds across accounts and addresses', async () => {
    const t = await build({ LATCHKEY_GLOBAL_LOGIN_RATE_LIMIT: '3', LATCHKEY_ACCOUNT_RATE_LIMIT: '100' });
    // Twelve attempts, each on its own account, spread over the addresses: only the global ceiling applies.
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        post(t.app, '/login', { email: uniqueEmail(`g${i}`), password: 'wrong-password' }, from(ADDRESSES[i % ADDRESSES.length]!)),
      ),
    );
    const statuses = answers.map((a) => a.statusCode).sort();
    // A window is one second: a slow machine may straddle two, never more than twice the ceiling.
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(12 - 6);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(6);
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
  });

  it('registration attempts count against the address', async () => {
    const t = await build({ LATCHKEY_LOGIN_RATE_LIMIT: '2' });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(t.app, '/register', { email: uniqueEmail('r'), password: PASSWORD }, from(ADDRESSES[0]!))).statusCode);
    expect(statuses).toEqual([201, 201, 429]);
    expect((await post(t.app, '/register', { email: uniqueEmail('r'), password: PASSWORD }, from(ADDRESSES[1]!))).statusCode).toBe(201);
  });

  it('every attempt-counted route refuses an address whose budget is spent, before reading the request', async () => {
    const t = await build({ LATCHKEY_LOGIN_RATE_LIMIT: '2' });
    for (let i = 0; i < 2; i++) await post(t.app, '/register', { email: uniqueEmail('r'), password: PASSWORD }, from(ADDRESSES[2]!));
    const paths = ['/register', '/login', '/password', '/password/forgot', '/password/reset'];
    for (const [i, path] of paths.entries()) {
      expect429(await post(t.app, path, {}, from(ADDRESSES[2]!)));
      // Another address still gets an answer about its request.
      expect((await post(t.app, path, {}, from(`198.51.100.${i + 1}`))).statusCode, path).not.toBe(429);
    }
  });

  it('refreshes are limited per session and per address', async () => {
    const t = await build({ LATCHKEY_SESSION_REFRESH_RATE_LIMIT: '3', LATCHKEY_REFRESH_RATE_LIMIT: '5' });
    const user = await register(t.app);
    let token = (await loginNative(t.app, user.email)).refresh;
    for (let i = 0; i < 3; i++) {
      const res = await post(t.app, '/refresh', { refresh_token: token }, from(ADDRESSES[0]!));
      expect(res.statusCode).toBe(200);
      token = res.json().refresh_token;
    }
    expect429(await post(t.app, '/refresh', { refresh_token: token }, from(ADDRESSES[1]!)));
    // The throttled refresh did not spend the token.
    const second = (await loginNative(t.app, user.email)).refresh;
    expect((await post(t.app, '/refresh', { refresh_token: second }, from(ADDRESSES[0]!))).statusCode).toBe(200);
    // Per address: ADDRESSES[0] has used 4 of 5, garbage counts too.
    expect((await post(t.app, '/refresh', { refresh_token: 'lk_rt_garbage' }, from(ADDRESSES[0]!))).statusCode).toBe(401);
    expect429(await post(t.app, '/refresh', { refresh_token: 'lk_rt_garbage' }, from(ADDRESSES[0]!)));
  });

  it('the OAuth token endpoint spends the same refresh budgets: per session, and per address', async () => {
    const t = await build({ LATCHKEY_SESSION_REFRESH_RATE_LIMIT: '3', LATCHKEY_REFRESH_RATE_LIMIT: '5' });
    const user = await register(t.app);
    const grant = (refresh_token: string, ip: string) =>
      t.app.inject({
        method: 'POST',
        url: '/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...from(ip) },
        payload: new URLSearchParams({ grant_type: 'refresh_token', refresh_token }).toString(),
      });
    let token = (await loginNative(t.app, user.email)).refresh;
    // Two at /refresh, one at /token: the session's third refresh.
    for (let i = 0; i < 3; i++) {
      const res = i < 2 ? await post(t.app, '/refresh', { refresh_token: token }, from(ADDRESSES[3]!)) : await grant(token, ADDRESSES[3]!);
      expect(res.statusCode).toBe(200);
      token = res.json().refresh_token;
    }
    expect429(await grant(token, ADDRESSES[4]!));
    // Per address: ADDRESSES[3] has used 3 of 5; garbage counts too.
    expect((await grant('lk_rt_garbage', ADDRESSES[3]!)).statusCode).toBe(400);
    expect((await grant('lk_rt_garbage', ADDRESSES[3]!)).statusCode).toBe(400);
    expect429(await grant('lk_rt_garbage', ADDRESSES[3]!));
  });
});

describe('trusted proxies', () => {
  const apps: TestApp[] = [];
  afterAll(async () => Promise.all(apps.map((a) => a.close())));

  it('X-Forwarded-For from a peer that is not a trusted proxy is ignored: by the throttle and in /sessions', async () => {
    const t = await buildTestApp('redis', { ...LIMITS, TRUST_PROXY: '10.0.0.0/8', LATCHKEY_LOGIN_RATE_LIMIT: '3' });
    apps.push(t);
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const res = await post(t.app, '/login', { email: uniqueEmail('x'), password: 'wrong-password' }, from(`6.6.6.${i}`));
      statuses.push(res.statusCode);
    }
    // Rotating the header from 127.0.0.1 does not buy a fresh budget.
    expect(statuses).toEqual([401, 401, 401, 429]);
    const t2 = await buildTestApp('redis', { ...LIMITS, TRUST_PROXY: '10.0.0.0/8' });
    apps.push(t2);
    const u2 = await register(t2.app);
    const { access } = await loginNative(t2.app, u2.email, PASSWORD, from('6.6.6.6'));
    const sessions = (await t2.app.inject({ method: 'GET', url: '/sessions', headers: bearer(access) })).json() as Array<{ ip: string }>;
    expect(sessions.map((s) => s.ip)).toEqual(['127.0.0.1']);
  });

  it('X-Forwarded-For through a trusted proxy names the client', async () => {
    const t = await buildTestApp('memory', { ...LIMITS, TRUST_PROXY: '10.0.0.0/8' });
    apps.push(t);
    const user = await register(t.app);
    const res = await t.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress: '10.1.2.3',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '6.6.6.6, 203.0.113.9' },
      payload: JSON.stringify({ email: user.email, password: PASSWORD }),
    });
    expect(res.statusCode).toBe(200);
    const sessions = (await t.app.inject({ method: 'GET', url: '/sessions', headers: bearer(res.json().access_token) })).json() as Array<{ ip: string }>;
    // Only the nearest untrusted address counts: 6.6.6.6 was written by the client itself.
    expect(sessions.map((s) => s.ip)).toEqual(['203.0.113.9']);
  });
});

describe('throttles in a shared Redis', () => {
  it('two instances sharing one Redis share the account budget', async () => {
    const keyPrefix = uniquePrefix('shared');
    const url = testRedisUrl();
    const stores = [0, 1].map(() => new RedisStore({ url, keyPrefix, commandTimeoutMs: 2000, logger: silentLogger() }));
    await Promise.all(stores.map((s) => s.connect()));
    const [a, b] = await Promise.all(stores.map((store) => buildTestApp('redis', LIMITS, { store })));
    try {
      const user = await register(a!.app);
      for (let i = 0; i < 10; i++) {
        const app = i % 2 === 0 ? a! : b!;
        expect((await post(app.app, '/login', { email: user.email, password: 'wrong-password' }, from(ADDRESSES[i % 5]!))).statusCode).toBe(401);
      }
      expect429(await post(b!.app, '/login', { email: user.email, password: PASSWORD }, from('198.51.100.1')));
      expect429(await post(a!.app, '/login', { email: user.email, password: PASSWORD }, from('198.51.100.2')));
    } finally {
      await Promise.all([a!.close(), b!.close()]);
      await deleteKeysWithPrefix(url, keyPrefix);
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('fails closed: with Redis down the throttle answers 503, never an unmetered attempt', async () => {
    const server = await startRedisServer();
    const store = new RedisStore({ url: server.url, keyPrefix: 'lk:', commandTimeoutMs: 500, logger: silentLogger() });
    await store.connect();
    const t = await buildTestApp('redis', LIMITS, { store });
    try {
      const user = await register(t.app);
      const verify = vi.spyOn(PasswordHasher.prototype, 'verify');
      await server.stop();
      const res = await post(t.app, '/login', { email: user.email, password: PASSWORD });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
      expect(res.headers['retry-after']).toBeDefined();
      expect(verify).not.toHaveBeenCalled();
      expect((await post(t.app, '/register', { email: uniqueEmail(), password: PASSWORD })).statusCode).toBe(503);
    } finally {
      await t.close();
      await store.close();
      await server.stop();
    }
  });
});

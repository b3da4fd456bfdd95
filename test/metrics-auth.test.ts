import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_CONTEXT } from '../src/audit/context.js';
import { StoreUnavailableError } from '../src/errors.js';
import { RedisStore } from '../src/store/redis-store.js';
import { buildTestApp, silentLogger, type TestApp } from './helpers/app.js';
import { bearer, loginNative, PASSWORD, post, register } from './helpers/client.js';
import { startRedisServer } from './support/redis-server.js';

/** The series of a scrape, by their full name with labels. */
async function scrape(t: TestApp): Promise<Map<string, number>> {
  const text = await t.app.latchkey.metrics.registry.metrics();
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

/** What changed between two scrapes. */
async function measure(t: TestApp, work: () => Promise<unknown>) {
  const before = await scrape(t);
  await work();
  const after = await scrape(t);
  return (series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);
}

const decisions = (where: string, decision: string) => `latchkey_token_decisions_total{where="${where}",decision="${decision}"}`;

describe.each(['memory', 'redis'] as const)('auth decision metrics (%s store)', (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp(kind);
  });
  afterAll(async () => t.close());

  it('count each Bearer decision by where it was made and what it was, and time the revocation check', async () => {
    const user = await register(t.app);
    const a = await loginNative(t.app, user.email);
    const delta = await measure(t, async () => {
      expect((await t.app.inject({ url: '/sessions', headers: bearer(a.access) })).statusCode).toBe(200);
      expect((await t.app.inject({ url: '/verify', headers: bearer(a.access) })).statusCode).toBe(200);
      expect((await t.app.inject({ url: '/verify', headers: bearer(a.access.replace(/.{4}$/, 'AAAA')) })).statusCode).toBe(401);
      expect((await t.app.inject({ url: '/verify' })).statusCode).toBe(401);
      expect((await post(t.app, '/logout-all', undefined, bearer(a.access))).statusCode).toBe(204);
      expect((await t.app.inject({ url: '/sessions', headers: bearer(a.access) })).statusCode).toBe(401);
      expect((await t.app.inject({ url: '/verify', headers: bearer(a.access) })).statusCode).toBe(401);
      t.clock.advanceSeconds(16 * 60);
      expect((await t.app.inject({ url: '/verify', headers: bearer(a.access) })).statusCode).toBe(401);
    });
    expect(delta(decisions('endpoint', 'valid'))).toBe(2); // GET /sessions, POST /logout-all
    expect(delta(decisions('endpoint', 'revoked'))).toBe(1);
    expect(delta(decisions('verify', 'valid'))).toBe(1);
    expect(delta(decisions('verify', 'invalid'))).toBe(2);
    expect(delta(decisions('verify', 'revoked'))).toBe(1);
    expect(delta(decisions('verify', 'expired'))).toBe(1);
    expect(delta('latchkey_revocation_check_duration_seconds_count{where="endpoint"}')).toBe(3);
    // The first /verify asks the store; the revoked token is then refused from forward auth's memory
    // (src/tokens/decided-tokens.ts), without a store call, and the expired one before any.
    expect(delta('latchkey_revocation_check_duration_seconds_count{where="verify"}')).toBe(1);
  });

  it('count failed logins by cause, never naming the account', async () => {
    const user = await register(t.app);
    const disabled = await register(t.app);
    await t.app.latchkey.accounts.disable(disabled.id, NO_CONTEXT);
    const delta = await measure(t, async () => {
      expect((await post(t.app, '/login', { email: user.email, password: `${PASSWORD}x` })).statusCode).toBe(401);
      expect((await post(t.app, '/login', { email: `nobody-${user.email}`, password: PASSWORD })).statusCode).toBe(401);
      expect((await post(t.app, '/login', { email: disabled.email, password: PASSWORD })).statusCode).toBe(401);
      expect((await post(t.app, '/login', { email: disabled.email, password: `${PASSWORD}x` })).statusCode).toBe(401);
    });
    expect(delta('latchkey_login_failures_total{cause="wrong_credentials"}')).toBe(3);
    expect(delta('latchkey_login_failures_total{cause="disabled"}')).toBe(1);
    const text = await t.app.latchkey.metrics.registry.metrics();
    for (const secret of [user.id, user.email, disabled.id, disabled.email]) expect(text).not.toContain(secret);
    expect(t.events).toContainEqual(expect.objectContaining({ type: 'login_failed', reason: 'unknown_account', userId: null }));
    expect(t.events).toContainEqual(expect.objectContaining({ type: 'login_failed', reason: 'disabled', userId: disabled.id }));
    for (const e of t.events) expect(JSON.stringify(e)).not.toContain('@example.com');
  });
});

describe('fail-open accepts, throttled logins and lost revocation facts', () => {
  it('a token accepted on its signature alone while the store is down is counted apart', async () => {
    const t = await buildTestApp('memory', { LATCHKEY_VERIFY_FAIL_OPEN: '30' });
    try {
      const user = await register(t.app);
      // The store answers once (for another token: one /verify has decided would be answered from memory).
      const seen = await loginNative(t.app, user.email);
      const { access } = await loginNative(t.app, user.email);
      expect((await t.app.inject({ url: '/verify', headers: bearer(seen.access) })).statusCode).toBe(200);
      const original = t.store.isAccessTokenActive.bind(t.store);
      t.store.isAccessTokenActive = () => Promise.reject(new StoreUnavailableError('down'));
      const delta = await measure(t, async () => {
        const res = await t.app.inject({ url: '/verify', headers: bearer(access) });
        expect(res.headers['x-revocation-checked']).toBe('false');
        expect((await t.app.inject({ url: '/sessions', headers: bearer(access) })).statusCode).toBe(503);
      });
      t.store.isAccessTokenActive = original;
      expect(delta('latchkey_token_fail_open_accepts_total{where="verify"}')).toBe(1);
      expect(delta(decisions('verify', 'valid'))).toBe(1);
      expect(delta(decisions('endpoint', 'unavailable'))).toBe(1);
      expect(delta('latchkey_token_fail_open_accepts_total{where="endpoint"}')).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('logins refused by the attempt limit count as throttled', async () => {
    // Registration and login share one budget of attempts per address: 2 leaves one login.
    const t = await buildTestApp('memory', { LATCHKEY_LOGIN_RATE_LIMIT: '2' });
    try {
      const user = await register(t.app, undefined);
      const delta = await measure(t, async () => {
        await post(t.app, '/login', { email: user.email, password: PASSWORD });
        expect((await post(t.app, '/login', { email: user.email, password: PASSWORD })).statusCode).toBe(429);
      });
      expect(delta('latchkey_login_failures_total{cause="throttled"}')).toBe(1);
    } finally {
      await t.close();
    }
  });

  it('revocation facts are timed onto the stream, and a fact that cannot be published is counted', async () => {
    const t = await buildTestApp('redis');
    try {
      const user = await register(t.app);
      const a = await loginNative(t.app, user.email);
      const b = await loginNative(t.app, user.email);
      const published = await measure(t, () => post(t.app, '/logout', { refresh_token: a.refresh }));
      expect(published('latchkey_revocation_stream_lag_seconds_count')).toBe(1);
      const original = t.store.publish.bind(t.store);
      t.store.publish = () => Promise.reject(new StoreUnavailableError('down'));
      const lost = await measure(t, () => post(t.app, '/logout', { refresh_token: b.refresh }));
      t.store.publish = original;
      expect(lost('latchkey_revocation_publish_failures_total')).toBe(1);
      expect(lost('latchkey_revocation_stream_lag_seconds_count')).toBe(0);
    } finally {
      await t.close();
    }
  });
});

describe('Redis command metrics on a Redis that hangs and dies', () => {
  it('time every call by family, count timeouts and errors apart, and report Redis down', async () => {
    const redis = await startRedisServer();
    const store = new RedisStore({ url: redis.url, keyPrefix: 'lk:', commandTimeoutMs: 200, logger: silentLogger() });
    await store.connect();
    const t = await buildTestApp('redis', {}, { store });
    try {
      const user = await register(t.app);
      const { access, refresh } = await loginNative(t.app, user.email);
      const ok = await measure(t, async () => {
        await post(t.app, '/refresh', { refresh_token: refresh });
        await t.app.inject({ url: '/verify', headers: bearer(access) });
      });
      expect(ok('latchkey_redis_command_duration_seconds_count{command="lkRotate"}')).toBe(1);
      expect(ok('latchkey_redis_command_duration_seconds_count{command="lkIsActive"}')).toBe(1);
      expect((await scrape(t)).get('latchkey_redis_up')).toBe(1);

      // Tokens /verify has not decided yet: a decided one may be answered from memory for the 2 s the
      // revocation stream may be silent (src/tokens/decided-tokens.ts).
      const other = await loginNative(t.app, user.email);
      const third = await loginNative(t.app, user.email);
      await redis.pause(); // hangs with its connections open: commands time out
      const hung = await measure(t, async () => {
        expect((await t.app.inject({ url: '/verify', headers: bearer(other.access) })).statusCode).toBe(503);
      });
      expect(hung('latchkey_redis_command_failures_total{command="lkIsActive",kind="timeout"}')).toBe(1);
      expect(hung(decisions('verify', 'unavailable'))).toBe(1);
      expect((await scrape(t)).get('latchkey_redis_up')).toBe(0);
      await redis.resume();

      await redis.kill();
      const dead = await measure(t, async () => {
        expect((await t.app.inject({ url: '/verify', headers: bearer(third.access) })).statusCode).toBe(503);
      });
      expect(dead('latchkey_redis_command_failures_total{command="lkIsActive",kind="error"}')).toBe(1);
      expect((await scrape(t)).get('latchkey_redis_up')).toBe(0);
    } finally {
      await t.close();
      await store.close();
      await redis.stop();
    }
  });
});

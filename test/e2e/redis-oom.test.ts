import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/errors.js';
import type { RedisStore } from '../../src/store/redis-store.js';
import { hashSecret, newMacKey, newSecret, newSessionId } from '../../src/tokens/refresh-token.js';
import { buildTestApp, createTestStore, type TestApp, type TestStore } from '../helpers/app.js';
import { loginNative, PASSWORD, post, refreshNative, register } from '../helpers/client.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

/**
 * Redis over maxmemory with noeviction refuses writes. A script that writes must be refused whole, before
 * its first command (the Redis 7 shebang in src/store/redis-scripts.ts), so nothing is stored half-way and
 * the client gets 503, never a token that was not persisted.
 */
describe('redis out of memory', () => {
  let redis: RedisServerHandle;
  let test: TestStore;
  let t: TestApp;
  let admin: Redis;

  beforeAll(async () => {
    redis = await startRedisServer({ extraArgs: ['--maxmemory-policy', 'noeviction'] });
    test = await createTestStore('redis', 'oom', redis.url);
    // Throttles off: their own counters would refuse first, and the session script is under test here.
    t = await buildTestApp(
      'redis',
      { LATCHKEY_LOGIN_RATE_LIMIT: '0', LATCHKEY_ACCOUNT_RATE_LIMIT: '0', LATCHKEY_GLOBAL_LOGIN_RATE_LIMIT: '0', LATCHKEY_REFRESH_RATE_LIMIT: '0', LATCHKEY_SESSION_REFRESH_RATE_LIMIT: '0' },
      { store: test.store },
    );
    admin = new Redis(redis.url);
  });
  afterAll(async () => {
    admin.disconnect();
    await t.close();
    await test.dispose();
    await redis.stop();
  });

  /**
   * Puts Redis over its limit for good: maxmemory below what it already uses. Filling up to the limit instead
   * is not steady (client buffers shrink after the refused write, and Redis has room again for a small one).
   */
  async function fill(): Promise<void> {
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
    await admin.config('SET', 'maxmemory', String(Math.floor(used / 2)));
    await expect(admin.set('oom-probe', 'x')).rejects.toThrow(/OOM/);
  }

  it('login and refresh answer 503 and store nothing while Redis is full, the session script is refused whole; all work once it has room', async () => {
    const user = await register(t.app);
    const before = await loginNative(t.app, user.email);
    await fill();

    const logins = [];
    for (let i = 0; i < 5; i++) logins.push(await post(t.app, '/login', { email: user.email, password: PASSWORD }));
    for (const res of logins) {
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
    }
    expect((await refreshNative(t.app, before.refresh)).statusCode).toBe(503);
    // Reads still work: only the session from before the fill exists, and its token was not spent.
    expect((await t.store.listSessions(user.id, Date.now())).map((s) => s.id)).toEqual([before.sessionId]);

    // The session script itself, called directly (login above may already stop at its reads): refused
    // whole, so not even its first command (dropping expired index entries) ran.
    const prefix = (test.store as RedisStore).keyPrefix;
    const index = `${prefix}{${user.id}}:ss`;
    await admin.config('SET', 'maxmemory', '0');
    await admin.zadd(index, 1, 'long-expired');
    await fill();
    const sessionId = newSessionId();
    await expect(
      test.store.createSession({
        userId: user.id,
        sessionId,
        secretHash: hashSecret(newSecret()),
        macKey: newMacKey(),
        channel: 'body',
        userAgent: null,
        ip: null,
        now: Date.now(),
        refreshTtlMs: 60_000,
        absoluteTtlMs: 120_000,
        maxSessions: 50,
      }),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(await admin.exists(`${prefix}{${user.id}}:s:${sessionId}`)).toBe(0);
    expect(await admin.zscore(index, 'long-expired')).toBe('1');
    expect(await admin.zscore(index, sessionId)).toBeNull();

    await admin.config('SET', 'maxmemory', '0');
    expect((await refreshNative(t.app, before.refresh)).statusCode).toBe(200);
    expect((await post(t.app, '/login', { email: user.email, password: PASSWORD })).statusCode).toBe(200);
  });
});

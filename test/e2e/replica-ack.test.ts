import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/store/redis-store.js';
import { buildTestApp, silentLogger, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, post, refreshNative, register } from '../helpers/client.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';

/**
 * REDIS_REPLICAS_TO_ACK on a master that has fewer replicas than asked for (a failover promoted a node
 * whose replicas are gone): a revocation is done at once, and every attempt, the first and each retry, is
 * told so plainly instead of a bare "unavailable".
 */
describe('revocations on a master with too few replicas', () => {
  let redis: RedisServerHandle;
  let store: RedisStore;
  let t: TestApp;
  beforeAll(async () => {
    redis = await startRedisServer();
    store = new RedisStore({ url: redis.url, keyPrefix: 'lk:', commandTimeoutMs: 2000, logger: silentLogger(), replicasToAck: 1, replicaAckTimeoutMs: 100 });
    await store.connect();
    t = await buildTestApp('redis', {}, { store });
  });
  afterAll(async () => {
    await t.close();
    await store.close();
    await redis.stop();
  });

  it('logout revokes, then answers 503 saying the revocation is in effect but not yet replicated, on every retry', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await post(t.app, '/logout', { refresh_token: login.refresh }, bearer(login.access));
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBeDefined();
      expect(res.json()).toEqual({
        error: 'temporarily_unavailable',
        error_description: 'The revocation is in effect but not yet confirmed by enough Redis replicas; retry later.',
      });
    }
    // In effect on the master at once: neither token works any more.
    expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/verify', headers: bearer(login.access) })).statusCode).toBe(401);
  });
});

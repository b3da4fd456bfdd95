import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisTopology } from '../../src/config.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { newUserId } from '../../src/accounts/accounts.js';
import { createVerifier, VerifyError } from '@latchkey/verifier';
import { buildTestApp, silentLogger, type TestStore } from '../helpers/app.js';
import { bearer, loginNative, post, refreshNative, register } from '../helpers/client.js';
import { uniquePrefix } from '../support/redis.js';
import { startRedisCluster, startRedisSentinel, type SentinelHandle } from '../support/redis-topologies.js';
import { storeContract } from './contract.js';

async function open(topology: () => RedisTopology): Promise<TestStore & { store: RedisStore }> {
  const store = new RedisStore({ ...topology(), keyPrefix: uniquePrefix('topology'), commandTimeoutMs: 2000, logger: silentLogger() });
  expect(await store.connect(10_000)).toBe(true);
  return { store, dispose: () => store.close() };
}

/** The whole login → refresh → revoke flow through the app, on the given store. */
async function flowWorks(store: RedisStore): Promise<void> {
  const t = await buildTestApp('redis', {}, { store });
  try {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const refreshed = await refreshNative(t.app, login.refresh);
    expect(refreshed.statusCode).toBe(200);
    expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(200); // grace
    const sessions = await t.app.inject({ url: '/sessions', headers: bearer(login.access) });
    expect(sessions.json()).toHaveLength(1);
    expect((await post(t.app, '/logout-all', undefined, bearer(login.access))).statusCode).toBe(204);
    expect((await refreshNative(t.app, (refreshed.json() as { refresh_token: string }).refresh_token)).statusCode).toBe(401);
  } finally {
    await t.close();
  }
}

/** Starts `start()` before the enclosing describe's tests and stops it after them. */
function serversFor<T extends { stop(): Promise<void> }>(start: () => Promise<T>): () => T {
  let handle: T | undefined;
  beforeAll(async () => {
    handle = await start();
  }, 60_000);
  afterAll(async () => handle?.stop());
  return () => handle!;
}

describe('on a Redis Cluster', () => {
  const servers = serversFor(startRedisCluster);
  const topology = (): RedisTopology => ({ cluster: { nodes: servers().nodes } });

  storeContract('redis', () => open(topology), 'Redis Cluster');

  it('runs every flow with users spread over the nodes, each user in one slot', async () => {
    const { store, dispose } = await open(topology);
    try {
      await flowWorks(store);
      // A real cluster: users land on more than one node, every key of one user on the same node.
      const holders = new Set<number>();
      for (let i = 0; i < 12; i++) {
        const id = newUserId();
        await store.createUser({ id, email: `${id}@example.com`, passwordHash: 'h', roles: [], disabled: false, createdAt: 0, revokedAfter: 0 });
        for (const [n, url] of servers().nodes.entries()) {
          const node = new Redis(url);
          if ((await node.call('CLUSTER', 'COUNTKEYSINSLOT', String(await node.call('CLUSTER', 'KEYSLOT', `${store.keyPrefix}{${id}}:u`)))) as number > 0) holders.add(n);
          node.disconnect();
        }
      }
      expect(holders.size).toBeGreaterThan(1);
    } finally {
      await dispose();
    }
  });

  it('latchkey/verifier checks first sight and follows revocations through a Cluster client', async () => {
    const { store, dispose } = await open(topology);
    const t = await buildTestApp('redis', {}, { store, clock: Date.now });
    const client = new Cluster(servers().nodes.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) })), { enableOfflineQueue: false });
    client.on('error', () => undefined);
    const jwks = createLocalJWKSet((await t.app.inject('/.well-known/jwks.json')).json() as JSONWebKeySet);
    const verifier = createVerifier({ issuer: t.config.issuer, audience: t.config.audience, getKey: jwks, redis: client, keyPrefix: store.keyPrefix });
    try {
      await verifier.ready();
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      expect((await verifier.verify(login.access)).sub).toBe(user.id);
      expect((await post(t.app, '/logout', { refresh_token: login.refresh }, bearer(login.access))).statusCode).toBe(204);
      const deadline = Date.now() + 3000;
      let code = 'accepted';
      while (code === 'accepted' && Date.now() < deadline) {
        code = await verifier.verify(login.access).then(
          () => 'accepted',
          (err: unknown) => (err instanceof VerifyError ? err.code : String(err)),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(code).toBe('revoked');
    } finally {
      await verifier.close();
      client.disconnect();
      await t.close();
      await dispose();
    }
  });
});

const sentinelTopology = (s: SentinelHandle): RedisTopology => ({ sentinel: { sentinels: [s.sentinelUrl], master: s.name } });

describe('through Redis Sentinel', () => {
  const servers = serversFor(startRedisSentinel);
  const topology = () => sentinelTopology(servers());
  storeContract('redis', () => open(topology), 'Redis Sentinel');

  it('follows a failover: refreshes answer 503 while the master is gone, never 401, then work on the promoted replica', { timeout: 60_000 }, async () => {
    const sentinel = servers();
    const { store, dispose } = await open(topology);
    const t = await buildTestApp('redis', {}, { store });
    try {
      const user = await register(t.app);
      const login = await loginNative(t.app, user.email);
      // Replication is asynchronous; make sure the session reached the replica before the master dies.
      const master = new Redis(sentinel.master.url);
      expect(await master.call('WAIT', '1', '5000')).toBe(1);
      master.disconnect();
      await sentinel.master.kill();

      let token = login.refresh;
      const statuses = new Set<number>();
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const res = await refreshNative(t.app, token);
        statuses.add(res.statusCode);
        if (res.statusCode === 200) {
          token = (res.json() as { refresh_token: string }).refresh_token;
          break;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      expect([...statuses].filter((s) => s !== 200 && s !== 503)).toEqual([]);
      expect(statuses.has(200)).toBe(true);
      expect((await refreshNative(t.app, token)).statusCode).toBe(200);
      const replica = new Redis(sentinel.replica.url);
      expect(await replica.info('replication')).toMatch(/role:master/);
      replica.disconnect();
    } finally {
      await t.close();
      await dispose();
    }
  });
});

describe('with REDIS_REPLICAS_TO_ACK, a confirmed revocation survives a Sentinel failover', () => {
  const servers = serversFor(startRedisSentinel);

  it('logout answers 503 until a replica holds it; retried after a failover that lost it, it revokes again', { timeout: 90_000 }, async () => {
    const sentinel = servers();
    const keyPrefix = uniquePrefix('acks');
    const store = new RedisStore({
      ...sentinelTopology(sentinel),
      keyPrefix,
      commandTimeoutMs: 2000,
      logger: silentLogger(),
      replicasToAck: 1,
      replicaAckTimeoutMs: 300,
    });
    expect(await store.connect(10_000)).toBe(true);
    const t = await buildTestApp('redis', {}, { store });
    try {
      const user = await register(t.app);
      const first = await loginNative(t.app, user.email);
      expect((await post(t.app, '/logout', { refresh_token: first.refresh })).statusCode).toBe(204);

      const second = await loginNative(t.app, user.email);
      const sessionKey = `${keyPrefix}{${user.id}}:s:${second.sessionId}`;
      const master = new Redis(sentinel.master.url);
      expect(await master.call('WAIT', '1', '5000')).toBe(1); // the session itself is on the replica
      // Replication breaks: the replica hangs and the master drops the link, so nothing more reaches it.
      await sentinel.replica.pause();
      await master.call('CLIENT', 'KILL', 'TYPE', 'replica');
      master.disconnect();
      expect((await post(t.app, '/logout', { refresh_token: second.refresh })).statusCode).toBe(503);
      // The master revoked the session, the replica never heard of it, and the master dies.
      await sentinel.master.kill();
      await sentinel.replica.resume();
      const promoted = new Redis(sentinel.replica.url);
      const deadline = Date.now() + 30_000;
      while (!(await promoted.info('replication')).includes('role:master') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await promoted.exists(sessionKey)).toBe(1); // the lost write: the session is back
      promoted.disconnect();
      // The old master returns and Sentinel makes it a replica, so revocations can be confirmed again.
      await sentinel.master.restart();

      let status = 0;
      const retryUntil = Date.now() + 40_000;
      while (status !== 204 && Date.now() < retryUntil) {
        status = (await post(t.app, '/logout', { refresh_token: second.refresh })).statusCode;
        expect([204, 503]).toContain(status);
        if (status !== 204) await new Promise((r) => setTimeout(r, 250));
      }
      expect(status).toBe(204);
      expect((await refreshNative(t.app, second.refresh)).statusCode).toBe(401);
    } finally {
      await t.close();
      await store.close();
    }
  });
});

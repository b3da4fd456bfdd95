import { createLocalJWKSet, decodeJwt, type JSONWebKeySet } from 'jose';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/store/redis-store.js';
import { createVerifier, VerifyError, type Verifier, type VerifierOptions } from '@latchkey/verifier';
import { buildTestApp, createTestStore, silentLogger, type TestApp } from '../helpers/app.js';
import { bearer, loginNative, post, refreshNative, register } from '../helpers/client.js';
import { startRedisServer } from '../support/redis-server.js';

async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`not within ${ms} ms`);
}

const codeOf = (v: Verifier, token: string) =>
  v.verify(token).then(
    () => 'accepted',
    (err: unknown) => (err instanceof VerifyError ? err.code : `unexpected: ${String(err)}`),
  );

/** A Redis of the test's own (it is stopped and flushed), latchkey on it, and verifiers reading it. */
async function environment(env: Record<string, string> = {}) {
  const redis = await startRedisServer();
  const test = await createTestStore('redis', 'verifier', redis.url);
  const t = await buildTestApp('redis', env, { store: test.store, clock: Date.now });
  const prefix = (test.store as RedisStore).keyPrefix;
  const jwks = createLocalJWKSet((await t.app.inject('/.well-known/jwks.json')).json() as JSONWebKeySet);
  const clients: Redis[] = [];
  const verifiers: Verifier[] = [];
  const verifier = async (extra: Partial<VerifierOptions> = {}, url = redis.url) => {
    const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    clients.push(client);
    const v = createVerifier({ issuer: t.config.issuer, audience: t.config.audience, getKey: jwks, redis: client, keyPrefix: prefix, ...extra });
    verifiers.push(v);
    await v.ready();
    return { v, client };
  };
  return {
    redis,
    t,
    prefix,
    verifier,
    async close() {
      for (const v of verifiers) await v.close();
      for (const c of clients) c.disconnect();
      await t.close();
      await test.dispose();
      await redis.stop();
    },
  };
}

describe('verifier: revocation seen within a second, no Redis call for a hot token', () => {
  let env: Awaited<ReturnType<typeof environment>>;
  beforeAll(async () => {
    env = await environment();
  });
  afterAll(async () => env.close());

  it('a hot, unrevoked token is verified without any Redis command', async () => {
    const { v, client } = await env.verifier();
    let commands = 0;
    const original = client.sendCommand.bind(client);
    client.sendCommand = ((...args: Parameters<typeof original>) => {
      commands++;
      return original(...args);
    }) as typeof client.sendCommand;
    const user = await register(env.t.app);
    const { access } = await loginNative(env.t.app, user.email);
    expect((await v.verify(access)).sub).toBe(user.id);
    expect(commands).toBe(1);
    for (let i = 0; i < 1000; i++) await v.verify(access);
    expect(commands).toBe(1);
    expect(v.stats()).toMatchObject({ redisLookups: 1, accepted: 1001 });
  });

  it('logout on one latchkey instance is honoured by a verifier within 1 s', async () => {
    const { v } = await env.verifier();
    // A second latchkey instance on the same Redis and prefix.
    const store2 = new RedisStore({ url: env.redis.url, keyPrefix: env.prefix, commandTimeoutMs: 2000, logger: silentLogger() });
    await store2.connect();
    const b: TestApp = await buildTestApp('redis', {}, { store: store2, clock: Date.now });
    try {
      const user = await register(env.t.app);
      const login = await loginNative(env.t.app, user.email);
      const second = await loginNative(env.t.app, user.email);
      await v.verify(login.access);
      await v.verify(second.access);
      expect((await post(b.app, '/logout', { refresh_token: login.refresh })).statusCode).toBe(204);
      const took = await within(1000, async () => (await codeOf(v, login.access)) === 'revoked');
      expect(took).toBeLessThan(1000);
      expect(await codeOf(v, second.access)).toBe('accepted');
      // logout-all on instance B reaches every session
      expect((await post(b.app, '/logout-all', undefined, bearer(second.access))).statusCode).toBe(204);
      await within(1000, async () => (await codeOf(v, second.access)) === 'revoked');
    } finally {
      await b.close();
      await store2.close();
    }
  });

  it('reuse detection, a deny-listed jti and a deleted session are all honoured', async () => {
    const { v } = await env.verifier();
    const user = await register(env.t.app);
    const a = await loginNative(env.t.app, user.email);
    const b = await loginNative(env.t.app, user.email);
    const c = await loginNative(env.t.app, user.email);
    for (const x of [a, b, c]) await v.verify(x.access);
    // reuse: spend a's token, wait out the grace window by presenting an older token after rotating twice
    const r1 = (await refreshNative(env.t.app, a.refresh)).json().refresh_token as string;
    await refreshNative(env.t.app, r1);
    expect((await refreshNative(env.t.app, a.refresh)).statusCode).toBe(401);
    await within(1000, async () => (await codeOf(v, a.access)) === 'revoked');
    // jti deny-list: log out with only the access token
    await post(env.t.app, '/logout', undefined, bearer(b.access));
    await within(1000, async () => (await codeOf(v, b.access)) === 'revoked');
    // DELETE /sessions/{id}
    await env.t.app.inject({ method: 'DELETE', url: `/sessions/${c.sessionId}`, headers: bearer(c.access) });
    await within(1000, async () => (await codeOf(v, c.access)) === 'revoked');
  });

  it('a token revoked before the verifier first saw it is refused at first sight', async () => {
    const user = await register(env.t.app);
    const login = await loginNative(env.t.app, user.email);
    await post(env.t.app, '/logout', { refresh_token: login.refresh });
    const { v } = await env.verifier();
    expect(await codeOf(v, login.access)).toBe('revoked');
    expect(await codeOf(v, login.access)).toBe('revoked');
    expect(v.stats().redisLookups).toBe(1);
  });

  it.each([
    ['the default tolerance', undefined],
    ['a 30 s tolerance, longer than latchkey\'s skew', 30],
  ] as const)(
    'a revoked session and a deny-listed jti stay revoked in the cache until their token could no longer be accepted (%s)',
    async (_label, tolerance) => {
      let frozen: number | null = null;
      const { v } = await env.verifier({ now: () => frozen ?? Date.now(), clockToleranceSeconds: tolerance });
      const user = await register(env.t.app);
      const bySession = await loginNative(env.t.app, user.email);
      const byJti = await loginNative(env.t.app, user.email);
      for (const login of [bySession, byJti]) expect(await codeOf(v, login.access)).toBe('accepted');
      await post(env.t.app, '/logout', { refresh_token: bySession.refresh });
      await post(env.t.app, '/logout', undefined, bearer(byJti.access));
      for (const login of [bySession, byJti]) await within(1000, async () => (await codeOf(v, login.access)) === 'revoked');
      const lookups = v.stats().redisLookups;

      // The verifier's clock jumps to the last half second in which it would still take the token as unexpired;
      // the revocation stream is read (and old facts pruned) at least once a second.
      // The earlier of the two expiries (the logins may straddle a second), so neither token has expired yet.
      const exp = Math.min(decodeJwt(bySession.access).exp!, decodeJwt(byJti.access).exp!);
      frozen = (exp + (tolerance ?? 5)) * 1000 - 500;
      await new Promise((r) => setTimeout(r, 1500));
      for (const login of [bySession, byJti]) expect(await codeOf(v, login.access)).toBe('revoked');
      expect(v.stats().redisLookups).toBe(lookups);
      // Half a second later the token has expired in its own right.
      frozen += 1000;
      expect(await codeOf(v, bySession.access)).toBe('expired');
    },
  );

  it('typed errors: expired, invalid', async () => {
    const user = await register(env.t.app);
    const { access } = await loginNative(env.t.app, user.email);
    const later = await env.verifier({ now: () => Date.now() + 16 * 60_000 });
    expect(await codeOf(later.v, access)).toBe('expired');
    const { v } = await env.verifier();
    expect(await codeOf(v, access.replace(/.{4}$/, 'AAAA'))).toBe('invalid');
    expect(await codeOf(v, 'not-a-jwt')).toBe('invalid');
    const wrongAudience = await env.verifier({ audience: 'https://someone-else.example' });
    expect(await codeOf(wrongAudience.v, access)).toBe('invalid');
    expect(v.stats()).toMatchObject({ invalid: 2 });
  });
});

describe('verifier: when Redis is unreachable or lost its data', () => {
  let env: Awaited<ReturnType<typeof environment>>;
  beforeAll(async () => {
    env = await environment();
  });
  afterAll(async () => env.close());
  afterEach(async () => {
    if (env.redis.stopped) await env.redis.restart();
    await within(10_000, async () => (await env.t.app.inject('/readyz')).statusCode === 200);
  });

  it('failClosed (default) refuses with unavailable; failOpen accepts for its window only; both recover', async () => {
    const user = await register(env.t.app);
    const { access } = await loginNative(env.t.app, user.email);
    const fresh = await loginNative(env.t.app, user.email);
    // The stream is read in blocks of up to a second: a staleness bound above that keeps a healthy verifier fresh.
    const closed = await env.verifier({ maxStalenessMs: 1500 });
    const open = await env.verifier({ maxStalenessMs: 1500, revocation: { policy: 'failOpen', maxSeconds: 5 } });
    for (const { v } of [closed, open]) expect(await codeOf(v, access)).toBe('accepted');

    await env.redis.kill();
    await within(4000, async () => (await codeOf(closed.v, access)) === 'unavailable');
    expect(await codeOf(open.v, access)).toBe('accepted');
    // a token never seen before: signature alone under failOpen, refused under failClosed
    expect(await codeOf(open.v, fresh.access)).toBe('accepted');
    expect(await codeOf(closed.v, fresh.access)).toBe('unavailable');
    await within(9000, async () => (await codeOf(open.v, access)) === 'unavailable');
    expect(closed.v.stats().unavailable).toBeGreaterThan(0);

    await env.redis.restart();
    for (const { v } of [closed, open]) await within(5000, async () => (await codeOf(v, access)) !== 'unavailable');
  });

  it('a Redis that lost its data does not bring revoked tokens back: lost sessions read as revoked', async () => {
    const user = await register(env.t.app);
    const revokedLater = await loginNative(env.t.app, user.email);
    const { v } = await env.verifier();
    expect(await codeOf(v, revokedLater.access)).toBe('accepted');
    // Restart without persistence: every session, user and revocation fact is gone.
    await env.redis.restart();
    await within(10_000, async () => (await env.t.app.inject('/readyz')).statusCode === 200);
    await within(5000, async () => (await codeOf(v, revokedLater.access)) === 'revoked');

    // A flush does the same; accounts made after it work as usual.
    const again = await register(env.t.app);
    const login = await loginNative(env.t.app, again.email);
    expect(await codeOf(v, login.access)).toBe('accepted');
    const raw = new Redis(env.redis.url);
    await raw.flushall();
    raw.disconnect();
    await within(5000, async () => (await codeOf(v, login.access)) === 'revoked');
  });
});

describe('verifier: what it reads, and revocations by the session cap', () => {
  let env: Awaited<ReturnType<typeof environment>>;
  beforeAll(async () => {
    env = await environment({ LATCHKEY_MAX_SESSIONS_PER_USER: '2' });
  });
  afterAll(async () => env.close());

  it('sessions pushed out by the per-user cap are announced: a verifier that had accepted their tokens refuses them', async () => {
    const { v } = await env.verifier();
    const user = await register(env.t.app);
    const first = await loginNative(env.t.app, user.email);
    expect(await codeOf(v, first.access)).toBe('accepted');
    await loginNative(env.t.app, user.email);
    await loginNative(env.t.app, user.email); // the cap is 2: the first session is revoked
    expect((await refreshNative(env.t.app, first.refresh)).statusCode).toBe(401);
    await within(1000, async () => (await codeOf(v, first.access)) === 'revoked');
    expect(env.t.events).toContainEqual(expect.objectContaining({ type: 'session_revoked', sessionId: first.sessionId, reason: 'session_cap' }));
  });

  it('works with a read-only Redis user limited to keys that hold no credential, which cannot read a user record', async () => {
    const p = env.prefix;
    const admin = new Redis(env.redis.url);
    try {
      await admin.call(
        'ACL', 'SETUSER', 'verifier', 'on', '>verifier-secret', 'resetkeys',
        `%R~${p}{*}:x`, `%R~${p}{*}:ss`, `%R~${p}{*}:j:*`, `%R~${p}revocations`, `%R~${p}epoch`, `%R~${p}global`,
        '-@all', '+@connection', '+info', '+eval_ro', '+evalsha_ro', '+exists', '+zscore', '+hget', '+get', '+hgetall', '+xread', '+xrange', '+xrevrange',
      );
      const url = env.redis.url.replace('redis://', 'redis://verifier:verifier-secret@');
      const { v, client } = await env.verifier({}, url);
      const user = await register(env.t.app);
      const login = await loginNative(env.t.app, user.email);
      expect(await codeOf(v, login.access)).toBe('accepted');
      await post(env.t.app, '/logout', { refresh_token: login.refresh });
      await within(1000, async () => (await codeOf(v, login.access)) === 'revoked');
      // A second token of the same user, first seen after the logout of another session: looked up, accepted.
      const again = await loginNative(env.t.app, user.email);
      expect(await codeOf(v, again.access)).toBe('accepted');
      expect(v.stats().unavailable).toBe(0);
      await expect(client.call('HGETALL', `${p}{${user.id}}:u`)).rejects.toThrow(/NOPERM/);
      await expect(client.call('HGET', `${p}{${user.id}}:u`, 'pw')).rejects.toThrow(/NOPERM/);
      await expect(client.call('KEYS', '*')).rejects.toThrow(/NOPERM/);
      await expect(client.call('SET', `${p}epoch`, 'x')).rejects.toThrow(/NOPERM/);
    } finally {
      admin.disconnect();
    }
  });
});

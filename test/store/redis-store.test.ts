import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import { NO_CONTEXT } from '../../src/audit/context.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { hashSecret, parseRefreshToken } from '../../src/tokens/refresh-token.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { loginNative, post, refreshNative, register } from '../helpers/client.js';
import { testRedisUrl } from '../support/redis.js';
import { startRedisServer } from '../support/redis-server.js';
import { storeContract } from './contract.js';

storeContract('redis');

/** Everything stored under the app's key prefix, as raw bytes, with each key's TTL. */
async function dump(t: TestApp) {
  const prefix = (t.store as RedisStore).keyPrefix;
  const raw = new Redis(testRedisUrl());
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const entries = [];
    for (const key of keys) {
      const type = await raw.type(key);
      const value =
        type === 'hash'
          ? Buffer.concat(Object.entries(await raw.hgetallBuffer(key)).flatMap(([f, v]) => [Buffer.from(f), v]))
          : type === 'zset'
            ? Buffer.from((await raw.zrange(key, 0, -1, 'WITHSCORES')).join(' '))
            : type === 'stream'
              ? Buffer.from(JSON.stringify(await raw.xrange(key, '-', '+')))
              : ((await raw.getBuffer(key)) ?? Buffer.alloc(0));
      entries.push({ key: key.slice(prefix.length), value, pttl: await raw.pttl(key) });
    }
    return entries;
  } finally {
    raw.disconnect();
  }
}

describe('redis store at rest', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('redis');
  });
  afterAll(async () => t.close());

  it('a dump of Redis yields no usable refresh or access token', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const spent = login.refresh;
    const res = await refreshNative(t.app, spent);
    const current = (res.json() as { refresh_token: string; access_token: string }).refresh_token;
    const secrets = [spent, current].map((tok) => parseRefreshToken(tok)!.secret);
    const entries = await dump(t);
    // The dump holds this session (its hash, with the grace record), so finding nothing in it means something.
    const sid = parseRefreshToken(spent)!.sessionId;
    expect(entries.filter((e) => e.key.includes(`:s:${sid}`))).toHaveLength(1);
    const haystack = Buffer.concat(entries.flatMap((e) => [Buffer.from(e.key), e.value]));
    for (const secret of secrets) {
      expect(haystack.includes(Buffer.from(secret))).toBe(false);
      expect(haystack.includes(Buffer.from(secret, 'base64url'))).toBe(false);
    }
    expect(haystack.includes(Buffer.from(login.access))).toBe(false);
    expect(haystack.includes(Buffer.from(user.password))).toBe(false);
  });

  it('keeps session hashes in the compact listpack encoding, even with a long user agent', async () => {
    const user = await register(t.app);
    const ua = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1 extra extra extra';
    const login = await loginNative(t.app, user.email, undefined, { 'user-agent': ua });
    await post(t.app, '/refresh', { refresh_token: login.refresh }, { 'user-agent': ua });
    const prefix = (t.store as RedisStore).keyPrefix;
    const raw = new Redis(testRedisUrl());
    try {
      const key = `${prefix}{${user.id}}:s:${login.sessionId}`;
      expect(await raw.object('ENCODING', key)).toBe('listpack');
      // As a hashtable the same session took over 1 KB.
      expect(Number(await raw.call('MEMORY', 'USAGE', key))).toBeLessThan(600);
    } finally {
      raw.disconnect();
    }
    const listed = await t.app.inject({ url: '/sessions', headers: { authorization: `Bearer ${login.access}` } });
    expect(listed.json()[0].user_agent).toBe(ua.slice(0, 128));
  });

  it('a session at rest keeps only its current token hash; the spent one only in its grace record, a field of the session', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const res = await refreshNative(t.app, login.refresh);
    expect(res.statusCode).toBe(200);
    const prefix = (t.store as RedisStore).keyPrefix;
    const spentHash = hashSecret(parseRefreshToken(login.refresh)!.secret);
    const raw = new Redis(testRedisUrl());
    try {
      const key = `${prefix}{${user.id}}:s:${login.sessionId}`;
      const session = await raw.hgetallBuffer(key);
      expect(Object.keys(session).sort()).toEqual(['a', 'c', 'g', 'h', 'i', 'k', 'l', 't', 'u', 'v']);
      // The spent hash is only in the grace record, which lives as long as the session (until the successor
      // rotates: a retry after a lost reply may come late), and the hash stays in its compact encoding.
      expect(Object.entries(session).filter(([, v]) => v.includes(spentHash.subarray(0, 16))).map(([f]) => f)).toEqual(['g']);
      expect(session.g!.subarray(0, 16).equals(spentHash.subarray(0, 16))).toBe(true);
      expect(await raw.object('ENCODING', key)).toBe('listpack');
      // Exactly one key per session beside the index: no grace key of its own.
      expect(await raw.keys(`${prefix}{${user.id}}:*${login.sessionId}*`)).toEqual([key]);
    } finally {
      raw.disconnect();
    }
  });

  it('refuses a successor nonce of the wrong length without touching the session', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    const presented = parseRefreshToken(login.refresh)!;
    const request = {
      userId: user.id,
      sessionId: login.sessionId,
      secretHash: hashSecret(presented.secret),
      tag: presented.tag,
      channel: 'body' as const,
      successorHash: hashSecret('x'),
      successorNonce: 'too-short',
      now: Date.now(),
      refreshTtlMs: 60_000,
      graceMs: 10_000,
      userAgent: null,
      ip: null,
    };
    await expect(t.store.rotate(request)).rejects.toThrow(/nonce must be 22 characters/);
    expect((await refreshNative(t.app, login.refresh)).statusCode).toBe(200);
  });

  it('every key has a TTL except the bounded user record, its state, the e-mail and user indexes, admin keys, the audit key and the epoch marker', async () => {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    await refreshNative(t.app, login.refresh);
    await t.app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${login.access}` } });
    // A reset token (stored even without SMTP outside production) and an admin key.
    await t.app.inject({ method: 'POST', url: '/password/forgot', payload: { email: user.email } });
    await t.app.latchkey.resets.flush();
    await t.app.latchkey.adminKeys.create(`ttl-${Date.now()}`, null, NO_CONTEXT);
    await t.app.latchkey.audit.flush();
    const entries = await dump(t);
    const kinds = new Set(entries.map((e) => e.key.replace(/^\{[^}]+\}:/, '').replace(/:.*$/, '')));
    // rl: throttle counters (src/throttle.ts), each expiring with its window.
    expect(kinds).toEqual(new Set(['u', 'x', 'ss', 's', 'j', 'pr', 'e', 'rl', 'users', 'ak', 'audit', 'hk', 'revocations', 'epoch']));
    for (const e of entries) {
      const permanent = /^\{[^}]+\}:[ux]$/.test(e.key) || e.key.startsWith('e:') || ['epoch', 'users', 'ak', 'hk'].includes(e.key);
      if (permanent) expect(e.pttl, e.key).toBe(-1);
      else expect(e.pttl, e.key).toBeGreaterThan(0);
    }
  });
});

describe('redis eviction policy', () => {
  it('warns at start-up unless maxmemory-policy is noeviction', async () => {
    const lru = await startRedisServer({ extraArgs: ['--maxmemory-policy', 'allkeys-lru'] });
    try {
      const lines: string[] = [];
      const logger = pino(
        { level: 'warn' },
        new Writable({
          write(chunk: Buffer, _e, done) {
            lines.push(chunk.toString());
            done();
          },
        }),
      );
      const store = new RedisStore({ url: lru.url, keyPrefix: 'lkt:evict:', commandTimeoutMs: 1000, logger });
      expect(await store.connect()).toBe(true);
      await store.close();
      expect(lines.join('')).toMatch(/"policy":"allkeys-lru".*not noeviction/);
    } finally {
      await lru.stop();
    }
  });
});

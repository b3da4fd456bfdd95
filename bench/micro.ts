/**
 * CPU baselines, each in its own process: the physical ceilings latchkey's figures are compared with.
 *   sign     RS256 signatures/s with node:crypto (async, on the thread pool) at a given concurrency
 *   argon2   argon2id verifications/s at latchkey's parameters and hash concurrency
 *   sign1    µs of CPU for one RS256 signature, on the calling thread (the floor of a refresh)
 *   verify   access-token verifications/s: raw node:crypto, jose jwtVerify, latchkey/verifier hot and distinct;
 *            with a Redis URL also distinct tokens with the first-sight lookup
 *   flood    the verifier's RSS after a flood of distinct forged tokens, and of distinct genuine ones
 *   cache    ns per hit: the verifier's TokenCache against lru-cache and a bare Map
 * Prints one JSON object on stdout.
 */
import { createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import argon2 from 'argon2';
import { createLocalJWKSet, exportJWK, jwtVerify, SignJWT } from 'jose';
import { Redis } from 'ioredis';
import { createVerifier, TokenCache } from '@latchkey/verifier';

const signAsync = promisify(sign);

async function forDuration(durationMs: number, concurrency: number, op: () => Promise<unknown>): Promise<number> {
  let done = 0;
  const deadline = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await op();
        done++;
      }
    }),
  );
  return (done * 1000) / (performance.now() - started);
}

function syncForDuration(durationMs: number, op: () => unknown): number {
  let done = 0;
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    op();
    done++;
  }
  return (done * 1000) / (performance.now() - started);
}

const ISS = 'https://auth.bench';
const AUD = 'https://api.bench';

function benchToken(privateKey: KeyObject, i: number): Promise<string> {
  return new SignJWT({ sid: `s${i}` })
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'k' })
    .setIssuer(ISS)
    .setAudience(AUD)
    .setSubject(`user-${i}`)
    .setJti(`jti-${i}`)
    .setIssuedAt()
    .setExpirationTime('15m')
    .sign(privateKey);
}

const rssMiB = () => process.memoryUsage().rss / 2 ** 20;

/**
 * Memory under a flood: `n` distinct forged tokens (the right kid, a signature that does not hold, so each
 * costs a full RSA verification), then distinct genuine tokens, five times the cache's size.
 */
async function flood(privateKey: KeyObject, n: number): Promise<Record<string, number>> {
  const jwk = { ...(await exportJWK(createPublicKey(privateKey))), kid: 'k', alg: 'RS256', use: 'sig' };
  const v = createVerifier({ issuer: ISS, audience: AUD, getKey: createLocalJWKSet({ keys: [jwk] }) });
  const genuine = await benchToken(privateKey, 0);
  await v.verify(genuine);
  globalThis.gc?.();
  const before = rssMiB();
  const [h, p, s] = genuine.split('.') as [string, string, string];
  const started = performance.now();
  let refused = 0;
  for (let i = 0; i < n; i++) {
    // A different payload each time, the genuine header and signature. The payload's last two characters
    // stay as they were, so it is spelled canonically and gets as far as the RSA verification.
    const forged = `${h}.${p.slice(0, -14)}${i.toString(36).padStart(12, 'A')}${p.slice(-2)}.${s}`;
    await v.verify(forged).catch(() => refused++);
  }
  const seconds = (performance.now() - started) / 1000;
  globalThis.gc?.();
  const afterForged = rssMiB();
  // Genuine distinct tokens beyond the cache's default size (10 000): the cache holds at most that many.
  const many = 50_000;
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: 'k' })).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < many; i++) {
    const claims = { iss: ISS, sub: `user-${i}`, aud: AUD, iat: now, exp: now + 900, jti: `j${i}-${'x'.repeat(16)}`, sid: `s${i}-${'y'.repeat(16)}` };
    const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    await v.verify(`${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`);
  }
  globalThis.gc?.();
  const afterGenuine = rssMiB();
  await v.close();
  return { forged: n, refused, forgedPerSec: n / seconds, rssBeforeMiB: before, rssAfterForgedMiB: afterForged, genuine: many, rssAfterGenuineMiB: afterGenuine };
}

/** ns per cache hit on 10 000 hot keys: TokenCache, lru-cache (if installed) and a bare Map. */
async function cacheHits(durationMs: number): Promise<Record<string, number>> {
  const keys = Array.from({ length: 10_000 }, (_, i) => `eyJhbGciOiJSUzI1NiJ9.${'p'.repeat(600)}${i}.${'s'.repeat(342)}`);
  const value = { claims: {}, revoked: false };
  const until = Date.now() + 900_000;
  const tc = new TokenCache<typeof value>(10_000);
  const map = new Map<string, typeof value>();
  for (const k of keys) {
    tc.set(k, value, until);
    map.set(k, value);
  }
  let i = 0;
  const now = Date.now();
  const ns = (f: () => unknown) => 1e9 / syncForDuration(durationMs / 3, f);
  const out: Record<string, number> = {
    tokenCacheNs: ns(() => tc.get(keys[i++ % keys.length]!, now)),
    mapNs: ns(() => map.get(keys[i++ % keys.length]!)),
  };
  try {
    const { LRUCache } = (await import('lru-cache')) as unknown as { LRUCache: new (o: object) => { get(k: string): unknown; set(k: string, v: unknown): void } };
    const lru = new LRUCache({ max: 10_000, ttl: 900_000, ttlAutopurge: false });
    for (const k of keys) lru.set(k, value);
    out.lruCacheNs = ns(() => lru.get(keys[i++ % keys.length]!));
  } catch {
    // lru-cache is not a dependency; it is measured only where some other package brought it in.
  }
  return out;
}

/** Operations per second of this process's CPU time (user + system): what neighbours' load does not change. */
async function perCpuSecond(durationMs: number, op: () => unknown): Promise<number> {
  const before = process.cpuUsage();
  let done = 0;
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    await op();
    done++;
  }
  const used = process.cpuUsage(before);
  return (done * 1e6) / (used.user + used.system);
}

async function main(): Promise<void> {
  const [mode, durationArg, concurrencyArg, redisArg] = process.argv.slice(2);
  const durationMs = Number(durationArg ?? 3000);
  const concurrency = Number(concurrencyArg ?? 32);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const payload = Buffer.from('a'.repeat(600));
  let result: Record<string, number>;

  if (mode === 'sign1') {
    // One thread, no pool: what a refresh's signature costs in CPU.
    result = { microsPerSign: 1e6 / syncForDuration(durationMs, () => sign('sha256', payload, privateKey)) };
  } else if (mode === 'flood') {
    result = await flood(privateKey, Number(concurrencyArg ?? 1_000_000));
  } else if (mode === 'cache') {
    result = await cacheHits(durationMs);
  } else if (mode === 'sign') {
    result = { opsPerSec: await forDuration(durationMs, concurrency, () => signAsync('sha256', payload, privateKey)) };
  } else if (mode === 'argon2') {
    const params = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;
    const hash = await argon2.hash('correct horse battery staple', params);
    result = { opsPerSec: await forDuration(durationMs, concurrency, () => argon2.verify(hash, 'correct horse battery staple')) };
  } else if (mode === 'verify') {
    const jwk = { ...(await exportJWK(createPublicKey(privateKey))), kid: 'k', alg: 'RS256', use: 'sig' };
    const jwks = createLocalJWKSet({ keys: [jwk] });
    const token = await benchToken(privateKey, 0);
    const distinct = await Promise.all(Array.from({ length: 5000 }, (_, i) => benchToken(privateKey, i + 1)));
    const [h, p, s] = token.split('.') as [string, string, string];
    const signed = Buffer.from(`${h}.${p}`);
    const signature = Buffer.from(s, 'base64url');
    const opts = { issuer: ISS, audience: AUD, algorithms: ['RS256'] };
    const jose = await forDuration(durationMs, 1, () => jwtVerify(token, jwks, opts));
    const hotVerifier = createVerifier({ issuer: ISS, audience: AUD, getKey: jwks, cacheSize: 50_000 });
    await hotVerifier.verify(token);
    const hot = await forDuration(durationMs, 1, () => hotVerifier.verify(token));
    // A cache far smaller than the token set: every verification is a first sight. It alternates with
    // the raw baseline in short slices, so both see the same neighbours on a shared machine.
    const coldVerifier = createVerifier({ issuer: ISS, audience: AUD, getKey: jwks, cacheSize: 1000 });
    let i = 0;
    // Both are counted per second of this process's CPU time, which the neighbours' load leaves alone.
    const raws: number[] = [];
    const colds: number[] = [];
    for (let slice = 0; slice < 6; slice++) {
      raws.push(await perCpuSecond(durationMs / 6, () => verify('sha256', signed, publicKey, signature)));
      colds.push(await perCpuSecond(durationMs / 6, () => coldVerifier.verify(distinct[i++ % distinct.length]!)));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    result = { rawCryptoVerify: mean(raws), joseJwtVerify: jose, verifierHot: hot, verifierDistinct: mean(colds), distinctRatio: mean(colds.map((c, k) => c / raws[k]!)) };
    if (redisArg) {
      // First sight with revocation: the signature, then one read-only script on Redis per new token, for
      // concurrent requests as a resource server has them.
      const redis = new Redis(redisArg, { enableOfflineQueue: false });
      await new Promise((r) => redis.once('ready', r));
      await redis.set('lkmicro:epoch', 'bench');
      const withRedis = createVerifier({ issuer: ISS, audience: AUD, getKey: jwks, cacheSize: 1000, redis, keyPrefix: 'lkmicro:' });
      await withRedis.ready();
      result.verifierDistinctRedis = await forDuration(durationMs, concurrency, () => withRedis.verify(distinct[i++ % distinct.length]!).catch(() => undefined));
      result.verifierDistinctNoRedisConcurrent = await forDuration(durationMs, concurrency, () => coldVerifier.verify(distinct[i++ % distinct.length]!));
      await withRedis.close();
      await redis.del('lkmicro:epoch');
      redis.disconnect();
    }
    await hotVerifier.close();
    await coldVerifier.close();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`micro: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});

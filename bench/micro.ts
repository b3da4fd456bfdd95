/**
 * CPU baselines, each in its own process: the physical ceilings latchkey's figures are compared with.
 *   sign     RS256 signatures/s with node:crypto (async, on the thread pool) at a given concurrency
 *   argon2   argon2id verifications/s at latchkey's parameters and hash concurrency
 *   verify   access-token verifications/s: raw node:crypto, jose jwtVerify, latchkey/verifier hot and distinct
 * Prints one JSON object on stdout.
 */
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { promisify } from 'node:util';
import argon2 from 'argon2';
import { createLocalJWKSet, exportJWK, jwtVerify, SignJWT } from 'jose';
import { createVerifier } from '@latchkey/verifier';

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

async function main(): Promise<void> {
  const [mode, durationArg, concurrencyArg] = process.argv.slice(2);
  const durationMs = Number(durationArg ?? 3000);
  const concurrency = Number(concurrencyArg ?? 32);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const payload = Buffer.from('a'.repeat(600));
  let result: Record<string, number>;

  if (mode === 'sign') {
    result = { opsPerSec: await forDuration(durationMs, concurrency, () => signAsync('sha256', payload, privateKey)) };
  } else if (mode === 'argon2') {
    const params = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;
    const hash = await argon2.hash('correct horse battery staple', params);
    result = { opsPerSec: await forDuration(durationMs, concurrency, () => argon2.verify(hash, 'correct horse battery staple')) };
  } else if (mode === 'verify') {
    const jwk = { ...(await exportJWK(createPublicKey(privateKey))), kid: 'k', alg: 'RS256', use: 'sig' };
    const jwks = createLocalJWKSet({ keys: [jwk] });
    const make = (i: number) =>
      new SignJWT({ sid: `s${i}` })
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'k' })
        .setIssuer('https://auth.bench')
        .setAudience('https://api.bench')
        .setSubject(`user-${i}`)
        .setJti(`jti-${i}`)
        .setIssuedAt()
        .setExpirationTime('15m')
        .sign(privateKey);
    const token = await make(0);
    const distinct = await Promise.all(Array.from({ length: 5000 }, (_, i) => make(i + 1)));
    const [h, p, s] = token.split('.') as [string, string, string];
    const signed = Buffer.from(`${h}.${p}`);
    const signature = Buffer.from(s, 'base64url');
    const opts = { issuer: 'https://auth.bench', audience: 'https://api.bench', algorithms: ['RS256'] };
    const raw = syncForDuration(durationMs, () => verify('sha256', signed, publicKey, signature));
    const jose = await forDuration(durationMs, 1, () => jwtVerify(token, jwks, opts));
    const hotVerifier = createVerifier({ issuer: opts.issuer, audience: opts.audience, getKey: jwks, cacheSize: 50_000 });
    await hotVerifier.verify(token);
    const hot = await forDuration(durationMs, 1, () => hotVerifier.verify(token));
    // A cache far smaller than the token set: every verification is a first sight.
    const coldVerifier = createVerifier({ issuer: opts.issuer, audience: opts.audience, getKey: jwks, cacheSize: 1000 });
    let i = 0;
    const cold = await forDuration(durationMs, 1, () => coldVerifier.verify(distinct[i++ % distinct.length]!));
    result = { rawCryptoVerify: raw, joseJwtVerify: jose, verifierHot: hot, verifierDistinct: cold };
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

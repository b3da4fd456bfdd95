import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { describe, expect, it } from 'vitest';
import { KeyStore } from '../../src/keys/keystore.js';
import { AccessTokens } from '../../src/tokens/access-token.js';
import { silentLogger, testKeysDir } from '../helpers/app.js';

describe('access-token signing', () => {
  it('signs the same verifiable RS256 token on the event loop and on the thread pool', async () => {
    const keys = new KeyStore(await testKeysDir(), silentLogger());
    await keys.load();
    const opts = { issuer: 'https://auth.example.com', audience: 'https://api.example.com', ttlSeconds: 900, clockSkewSeconds: 5 };
    const access = new AccessTokens(keys, opts);
    const now = Date.now();
    const jwks = createLocalJWKSet(JSON.parse(keys.jwks(now).body) as JSONWebKeySet);
    for (const inline of [true, false]) {
      const signed = await access.sign({ userId: 'u-1', sessionId: 's-1', roles: ['admin'], now, notAfter: now + 86_400_000, inline });
      expect(decodeProtectedHeader(signed.token)).toEqual({ alg: 'RS256', typ: 'at+jwt', kid: keys.signer(now)!.kid });
      const { payload } = await jwtVerify(signed.token, jwks, { issuer: opts.issuer, audience: opts.audience, typ: 'at+jwt', algorithms: ['RS256'] });
      expect(payload).toMatchObject({ sub: 'u-1', sid: 's-1', roles: ['admin'], jti: signed.jti, exp: signed.exp });
      expect(payload.exp! - payload.iat!).toBe(900);
      expect(await access.verify(signed.token, now)).toMatchObject({ sub: 'u-1', sid: 's-1' });
    }
    await keys.stop();
  });

  it('never lets an access token outlive its session', async () => {
    const keys = new KeyStore(await testKeysDir(), silentLogger());
    await keys.load();
    const access = new AccessTokens(keys, { issuer: 'i', audience: 'a', ttlSeconds: 900, clockSkewSeconds: 5 });
    const now = Date.now();
    const signed = await access.sign({ userId: 'u', sessionId: 's', roles: [], now, notAfter: now + 60_000 });
    expect(signed.exp - Math.floor(now / 1000)).toBeLessThanOrEqual(60);
    await keys.stop();
  });
});

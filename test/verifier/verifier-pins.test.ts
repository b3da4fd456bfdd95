import { createPublicKey } from 'node:crypto';
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, VerifyError, type Verifier } from '@latchkey/verifier';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { loginNative, register } from '../helpers/client.js';
import { forgeries, latchkeySigningKey, resign, type Context } from '../helpers/forge.js';

const codeOf = (v: Verifier, token: string) =>
  v.verify(token).then(
    () => 'accepted',
    (err: unknown) => (err instanceof VerifyError ? err.code : `unexpected: ${String(err)}`),
  );

/**
 * latchkey/verifier pins every header field and claim, not only the signature: each token below is signed
 * with latchkey's real key and kid, with one thing changed. Both the JWKS resolver and a resolver of the
 * caller's own that hands out latchkey's public key whatever the header asks for.
 */
describe('verifier: a token signed with the real key but one thing changed is invalid', () => {
  let t: TestApp;
  let access: string;
  const resolvers: Record<string, JWTVerifyGetKey> = {};
  beforeAll(async () => {
    t = await buildTestApp('memory');
    const user = await register(t.app);
    access = (await loginNative(t.app, user.email)).access;
    resolvers.jwks = createLocalJWKSet((await t.app.inject('/.well-known/jwks.json')).json() as JSONWebKeySet);
    const publicKey = createPublicKey((await latchkeySigningKey()).privateKey);
    resolvers['a key for any alg'] = () => publicKey;
  });
  afterAll(async () => t.close());

  const verifier = (resolver: string, extra: { maxLifetimeSeconds?: number } = { maxLifetimeSeconds: t.config.accessTokenTtl }) =>
    createVerifier({ issuer: t.config.issuer, audience: t.config.audience, getKey: resolvers[resolver]!, now: t.clock.now, ...extra });
  const context = (): Context => ({
    nowSeconds: Math.floor(t.clock.now() / 1000),
    ttlSeconds: t.config.accessTokenTtl,
    skewSeconds: 5, // the verifier's default tolerance
  });

  it.each(['jwks', 'a key for any alg'])('the unchanged token, re-signed, is accepted (%s)', async (resolver) => {
    expect(await codeOf(verifier(resolver), await resign(access, {}, context()))).toBe('accepted');
  });

  describe.each(['jwks', 'a key for any alg'])('key resolver: %s', (resolver) => {
    it.each(forgeries)('%s', async (_name, change) => {
      const v = verifier(resolver);
      expect(await codeOf(v, await resign(access, change, context()))).toBe('invalid');
      expect(v.stats()).toMatchObject({ invalid: 1, accepted: 0 });
    });
  });

  it('without maxLifetimeSeconds, a lifetime up to a day is accepted and a longer one refused', async () => {
    const v = verifier('jwks', {});
    const lifetime = (seconds: number) => resign(access, { claims: (c) => ({ ...c, exp: c.iat + seconds }) }, context());
    expect(await codeOf(v, await lifetime(86_400))).toBe('accepted');
    expect(await codeOf(v, await lifetime(86_401))).toBe('invalid');
  });
});

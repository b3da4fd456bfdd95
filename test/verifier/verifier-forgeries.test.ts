import { createPublicKey } from 'node:crypto';
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, VerifyError, type Verifier, type VerifierOptions } from '@latchkey/verifier';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { loginNative, register } from '../helpers/client.js';
import { forgeries, parts, rs256 } from '../helpers/forged-tokens.js';

/**
 * The verifier checks signatures with node:crypto and parses the JWS itself (packages/verifier/src/index.ts
 * `verifyAccessToken`). Every forgery is refused, whether the genuine token is cached or not, and whatever
 * key resolver the resource server supplies.
 */
describe('verifier: forged and malformed tokens', () => {
  let t: TestApp;
  let jwks: JWTVerifyGetKey;
  beforeAll(async () => {
    t = await buildTestApp('memory', {}, { clock: Date.now });
    jwks = createLocalJWKSet((await t.app.inject('/.well-known/jwks.json')).json() as JSONWebKeySet);
  });
  afterAll(async () => t.close());

  const verifier = (extra: Partial<VerifierOptions> = {}) => createVerifier({ issuer: t.config.issuer, audience: t.config.audience, getKey: jwks, ...extra });
  const codeOf = (v: Verifier, token: string) =>
    v.verify(token).then(
      () => 'accepted',
      (err: unknown) => (err instanceof VerifyError ? err.code : `unexpected: ${String(err)}`),
    );
  async function genuine() {
    const user = await register(t.app);
    return (await loginNative(t.app, user.email)).access;
  }
  const signingKey = () => t.app.latchkey.keys.signer(Date.now())!.privateKey;

  it('refuses every forgery before and after the genuine token is cached', async () => {
    const token = await genuine();
    const forged = forgeries(token, signingKey());
    const v = verifier();
    const expected = (name: string) => (name === 'expired' ? 'expired' : 'invalid');
    for (const [name, f] of Object.entries(forged)) expect([name, await codeOf(v, f)]).toEqual([name, expected(name)]);
    expect(await codeOf(v, token)).toBe('accepted');
    for (let round = 0; round < 2; round++) {
      for (const [name, f] of Object.entries(forged)) expect([name, await codeOf(v, f)]).toEqual([name, expected(name)]);
    }
    expect(await codeOf(v, token)).toBe('accepted');
    expect(v.stats().accepted).toBe(2);
  });

  it('a resolver that hands out the key whatever the header asks for does not open alg confusion', async () => {
    const token = await genuine();
    const forged = forgeries(token, signingKey());
    const publicKey = createPublicKey(signingKey());
    const resolvers: Record<string, JWTVerifyGetKey> = {
      'the public KeyObject': () => publicKey,
      'the public key as a JWK': () => publicKey.export({ format: 'jwk' }) as never,
      'the public PEM as bytes': () => Buffer.from(publicKey.export({ type: 'spki', format: 'pem' }) as string),
      'the private key': () => signingKey(),
    };
    for (const [label, getKey] of Object.entries(resolvers)) {
      const v = verifier({ getKey });
      for (const name of ['alg none', 'HS256 keyed with the public key', 'tampered payload, genuine signature', 'typ JWT']) {
        expect([label, name, await codeOf(v, forged[name]!)]).toEqual([label, name, 'invalid']);
      }
      const usable = label === 'the public KeyObject' || label === 'the public key as a JWK';
      expect([label, await codeOf(v, token)]).toEqual([label, usable ? 'accepted' : 'invalid']);
    }
  });

  it('refuses implausible times and encodings with invalid', async () => {
    const token = await genuine();
    const { header, payload, h, p, s } = parts(token);
    expect(JSON.stringify(payload)).toMatch(/"exp":\d+/);
    const key = signingKey();
    const now = Math.floor(Date.now() / 1000);
    const v = verifier({ maxLifetimeSeconds: t.config.accessTokenTtl });
    const cases: Record<string, string> = {
      'fractional iat': rs256(header, { ...payload, iat: now - 0.5 }, key),
      'fractional exp': rs256(header, { ...payload, exp: now + 60.5 }, key),
      'exp Infinity': rs256(header, Buffer.from(JSON.stringify(payload).replace(/"exp":\d+/, '"exp":1e309')), key),
      'iat in the future': rs256(header, { ...payload, iat: now + 120, exp: now + 600 }, key),
      'iat after exp': rs256(header, { ...payload, iat: now, exp: now - 1 }, key),
      'iat as a string': rs256(header, { ...payload, iat: String(now) }, key),
      'a lifetime beyond the maximum': rs256(header, { ...payload, iat: now - 10, exp: now + t.config.accessTokenTtl + 10 }, key),
      'a byte order mark before the payload': rs256(header, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(payload))]), key),
      'crit header': rs256({ ...header, crit: ['exp'], exp: 1 }, payload, key),
      'padding on the signature': `${h}.${p}.${s}==`,
      'an array as payload': rs256(header, [payload] as never, key),
    };
    for (const [name, f] of Object.entries(cases)) expect([name, await codeOf(v, f)]).toEqual([name, 'invalid']);
    expect(await codeOf(v, token)).toBe('accepted');
  });
});

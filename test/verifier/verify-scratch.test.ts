import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, exportJWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, VerifyError, type Verifier } from '@latchkey/verifier';

/**
 * The verifier decodes every token's signing input, signature and payload in one buffer shared by all
 * verifiers of the process (packages/verifier/src/index.ts `scratch`). Whatever overlaps, each token is
 * judged on its own bytes, and the longest token parsed still fits.
 */
describe('verifier: tokens decoded in one shared buffer', () => {
  const ISS = 'https://auth.scratch.test';
  const AUD = 'https://api.scratch.test';
  /** Its length lets a token come out at exactly 8192 characters below. */
  const KID = 'kid1';
  let privateKey: KeyObject;
  let otherKey: KeyObject;
  let verifier: () => Verifier;

  beforeAll(async () => {
    ({ privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 }));
    ({ privateKey: otherKey } = generateKeyPairSync('rsa', { modulusLength: 2048 }));
    const jwk = { ...(await exportJWK(createPublicKey(privateKey))), kid: KID, alg: 'RS256', use: 'sig' };
    const jwks = createLocalJWKSet({ keys: [jwk] });
    verifier = () => createVerifier({ issuer: ISS, audience: AUD, getKey: jwks, cacheSize: 4 });
  });

  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signingInput = (claims: Record<string, unknown>) => `${b64({ alg: 'RS256', typ: 'at+jwt', kid: KID })}.${b64(claims)}`;
  const signed = (input: string, key = privateKey) => `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
  const token = (claims: Record<string, unknown>, key = privateKey) => signed(signingInput(claims), key);
  const claims = (i: number, extra: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return { iss: ISS, aud: AUD, sub: `user-${i}`, iat: now, exp: now + 600, jti: `jti-${i}`, sid: `sid-${i}`, ...extra };
  };
  const outcome = (v: Verifier, t: string) =>
    v.verify(t).then(
      (c) => c.sub,
      (err: unknown) => (err instanceof VerifyError ? err.code : `unexpected: ${String(err)}`),
    );

  it('verifications in flight together on several verifiers each get their own claims; forgeries among them are refused', async () => {
    const verifiers = [verifier(), verifier(), verifier()];
    const cases: Array<{ t: string; expected: string }> = [];
    let previousSignature = token(claims(-1)).split('.')[2]!;
    for (let i = 0; i < 60; i++) {
      const genuine = token(claims(i));
      const [h, p, s] = genuine.split('.') as [string, string, string];
      cases.push({ t: genuine, expected: `user-${i}` });
      // The signature of the token before, and another user's payload under this one's signature.
      cases.push({ t: `${h}.${p}.${previousSignature}`, expected: 'invalid' });
      cases.push({ t: `${h}.${b64(claims(i + 1000))}.${s}`, expected: 'invalid' });
      previousSignature = s;
      cases.push({ t: token(claims(i), otherKey), expected: 'invalid' });
    }
    // Twice over: the second round meets a cache too small to hold them, so most are first sights again.
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(cases.map(({ t }, k) => outcome(verifiers[k % verifiers.length]!, t)));
      expect(results).toEqual(cases.map((c) => c.expected));
    }
  });

  it('a token at the length limit (8192 characters) is verified in full; one character more is refused', async () => {
    const v = verifier();
    // A filler for which the token is exactly 8192 characters (the reason for KID's length).
    const SIGNATURE_LENGTH = 342; // 256 bytes, base64url
    let longest: string | undefined;
    for (let fill = 5000; fill < 6000 && !longest; fill++) {
      const input = signingInput(claims(1, { filler: 'x'.repeat(fill) }));
      if (input.length + 1 + SIGNATURE_LENGTH === 8192) longest = signed(input);
    }
    expect(longest?.length).toBe(8192);
    expect(await outcome(v, longest!)).toBe('user-1');
    const [h, p, s] = longest!.split('.') as [string, string, string];
    // The same length with the signature's first byte changed: the whole signature is read.
    expect(await outcome(v, `${h}.${p}.${s[0] === 'A' ? 'B' : 'A'}${s.slice(1)}`)).toBe('invalid');
    // One character more, even where it would decode to the same bytes, is not looked at.
    expect(await outcome(v, `${longest!}=`)).toBe('invalid');
    expect(await outcome(v, `${longest!}A`)).toBe('invalid');
    const tooLong = token(claims(2, { filler: 'x'.repeat(6000) }));
    expect(tooLong.length).toBeGreaterThan(8192);
    expect(await outcome(v, tooLong)).toBe('invalid');
  });
});

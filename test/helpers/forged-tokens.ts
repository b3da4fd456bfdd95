import { createHmac, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

/**
 * Forgeries of a genuine access token, each one change away from it, for testing that every way of
 * verifying (the full path, forward auth's cache, the verifier package) refuses them alike.
 */

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const decode = (segment: string) => JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>;

export function parts(token: string) {
  const [h, p, s] = token.split('.') as [string, string, string];
  return { header: decode(h), payload: decode(p), h, p, s };
}

/** Signs header and payload as given with an RSA key (RS256); a Buffer payload is signed byte for byte. */
export function rs256(header: Record<string, unknown>, payload: Record<string, unknown> | Buffer, key: KeyObject): string {
  const input = `${b64(header)}.${Buffer.isBuffer(payload) ? payload.toString('base64url') : b64(payload)}`;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

/**
 * `genuine` is a token latchkey issued, `signingKey` latchkey's private key for it: forgeries that only
 * a claim check can catch are signed with it.
 */
export function forgeries(genuine: string, signingKey: KeyObject): Record<string, string> {
  const { header, payload, h, p, s } = parts(genuine);
  const publicPem = createPublicKey(signingKey).export({ type: 'spki', format: 'pem' });
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const hs256 = (() => {
    const input = `${b64({ ...header, alg: 'HS256' })}.${p}`;
    return `${input}.${createHmac('sha256', publicPem).update(input).digest('base64url')}`;
  })();
  const now = Math.floor(Date.now() / 1000);
  const flip = (c: string) => (c === 'A' ? 'B' : 'A');
  return {
    'alg none': `${b64({ ...header, alg: 'none' })}.${p}.`,
    'alg none with the genuine signature': `${b64({ ...header, alg: 'none' })}.${p}.${s}`,
    'HS256 keyed with the public key': hs256,
    'unknown kid, another key': rs256({ ...header, kid: 'no-such-kid' }, payload, stranger),
    'the genuine kid, another key': rs256(header, payload, stranger),
    'tampered payload, genuine signature': `${h}.${b64({ ...payload, sub: 'someone-else' })}.${s}`,
    'tampered roles, genuine signature': `${h}.${b64({ ...payload, roles: ['admin'] })}.${s}`,
    'tampered signature': `${h}.${p}.${s.slice(0, 10)}${flip(s[10]!)}${s.slice(11)}`,
    'truncated signature': `${h}.${p}.${s.slice(0, -4)}`,
    'typ JWT': rs256({ ...header, typ: 'JWT' }, payload, signingKey),
    'no typ': rs256({ alg: header.alg, kid: header.kid }, payload, signingKey),
    'wrong iss': rs256(header, { ...payload, iss: 'https://evil.example.com' }, signingKey),
    'wrong aud': rs256(header, { ...payload, aud: 'https://other-api.example.com' }, signingKey),
    'no sid': rs256(header, { ...payload, sid: undefined }, signingKey),
    expired: rs256(header, { ...payload, iat: now - 3600, exp: now - 1800 }, signingKey),
    'padded segments': `${h}=.${p}.${s}`,
    'two segments': `${h}.${p}`,
  };
}

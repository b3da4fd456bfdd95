import { constants, createHmac, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { keyFileSchema } from '../../src/keys/key-file.js';
import { testKeysDir } from './app.js';

/**
 * Re-signs a real access token with latchkey's own private key and kid after changing one thing, so a
 * test shows that a claim or header pin holds on its own and not only because a foreign key fails the
 * signature.
 */

export type Header = { alg: string; typ?: string; kid?: string } & Record<string, unknown>;
export type Claims = { iss: string; aud: string; sub: string; iat: number; exp: number; jti: string; sid: string } & Record<string, unknown>;

/** The verifying side's clock and settings, for changes that depend on them. */
export interface Context {
  nowSeconds: number;
  /** The configured access-token lifetime. */
  ttlSeconds: number;
  /** The allowed clock skew. */
  skewSeconds: number;
}

export interface Change {
  header?: (h: Header) => Header;
  /** Rewrites the header's JSON text. */
  headerText?: (json: string) => string;
  claims?: (c: Claims, ctx: Context) => Record<string, unknown>;
  /** Rewrites the payload's JSON text, for what JSON.stringify cannot write. */
  payloadText?: (json: string) => string;
  /** Rewrites the encoded payload segment (before signing). */
  payloadSegment?: (segment: string) => string;
  /** Rewrites the finished token (after signing). */
  token?: (token: string) => string;
}

let signingKey: Promise<{ kid: string; privateKey: KeyObject; publicPem: string }> | undefined;

/** The key latchkey signs with in tests: the one file in the test keys directory. */
export function latchkeySigningKey() {
  signingKey ??= (async () => {
    const dir = await testKeysDir();
    const [name] = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    if (!name) throw new Error(`no key file in ${dir}`);
    const file = keyFileSchema.parse(JSON.parse(await readFile(join(dir, name), 'utf8')));
    const privateKey = createPrivateKey(file.privateKey);
    const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
    return { kid: file.kid, privateKey, publicPem };
  })();
  return signingKey;
}

const b64 = (text: string) => Buffer.from(text).toString('base64url');
const decode = (segment: string) => JSON.parse(Buffer.from(segment, 'base64url').toString()) as unknown;

export async function resign(token: string, change: Change = {}, ctx?: Context): Promise<string> {
  const { kid, privateKey, publicPem } = await latchkeySigningKey();
  const [h, p] = token.split('.') as [string, string];
  const header = (change.header ?? ((x) => x))(decode(h) as Header);
  if (header.kid !== kid) throw new Error('the token was not signed by the test key');
  const claims = change.claims ? change.claims(decode(p) as Claims, ctx ?? noContext()) : decode(p);
  const json = (change.payloadText ?? ((x) => x))(JSON.stringify(claims));
  const payload = (change.payloadSegment ?? ((x) => x))(b64(json));
  const input = Buffer.from(`${b64((change.headerText ?? ((x) => x))(JSON.stringify(header)))}.${payload}`);
  let signature: Buffer;
  switch (header.alg) {
    case 'RS256':
      signature = sign('sha256', input, privateKey);
      break;
    case 'RS512':
      signature = sign('sha512', input, privateKey);
      break;
    case 'PS256':
      signature = sign('sha256', input, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
      break;
    case 'HS256':
      // The classic confusion: the public key, which anyone can fetch, used as an HMAC secret.
      signature = createHmac('sha256', publicPem).update(input).digest();
      break;
    default:
      throw new Error(`cannot sign ${header.alg}`);
  }
  return (change.token ?? ((x) => x))(`${input.toString()}.${signature.toString('base64url')}`);
}

const noContext = (): never => {
  throw new Error('this change needs a Context');
};

/** Pads a base64url segment to a multiple of four characters the way base64 would. */
const padded = (segment: string) => segment + '='.repeat((4 - (segment.length % 4)) % 4);

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * The same bytes spelled another way: the lowest spare bit of the last character set (RFC 4648 §3.5).
 * Decoders ignore spare bits; the check below proves the change is invisible to them.
 */
export function respelled(segment: string): string {
  if (segment.length % 4 < 2) throw new Error('this segment has no spare bits');
  const out = segment.slice(0, -1) + BASE64URL[BASE64URL.indexOf(segment.at(-1)!) | 1]!;
  if (out === segment || !Buffer.from(out, 'base64url').equals(Buffer.from(segment, 'base64url'))) throw new Error('not the same bytes');
  return out;
}

/** One change per token, each of which latchkey and its verifier must refuse. */
export const forgeries: Array<[string, Change]> = [
    ['typ "JWT" instead of "at+jwt"', { header: (h) => ({ ...h, typ: 'JWT' }) }],
    ['a foreign issuer', { claims: (c) => ({ ...c, iss: 'https://evil.example.com' }) }],
    ['a foreign audience', { claims: (c) => ({ ...c, aud: 'https://other-api.example.com' }) }],
    ['alg RS512, same key', { header: (h) => ({ ...h, alg: 'RS512' }) }],
    ['alg PS256, same key', { header: (h) => ({ ...h, alg: 'PS256' }) }],
    ['alg HS256 keyed with the public key', { header: (h) => ({ ...h, alg: 'HS256' }) }],
    ['exp 1e309 (Infinity once parsed)', { payloadText: (json) => json.replace(/"exp":\d+/, '"exp":1e309') }],
    // Fractions that keep the lifetime within bounds, so only the whole-seconds rule refuses them.
    ['a fractional exp', { claims: (c) => ({ ...c, exp: c.exp - 0.5 }) }],
    ['a fractional iat', { claims: (c) => ({ ...c, iat: c.iat + 0.5 }) }],
    [
      'iat 60 s beyond the allowed skew in the future',
      { claims: (c, { nowSeconds, skewSeconds }) => ({ ...c, iat: nowSeconds + skewSeconds + 60, exp: nowSeconds + skewSeconds + 60 + (c.exp - c.iat) }) },
    ],
    [
      'iat after exp (both within the allowed skew)',
      { claims: (c, { nowSeconds, skewSeconds }) => ({ ...c, iat: nowSeconds + skewSeconds - 1, exp: nowSeconds + skewSeconds - 2 }) },
    ],
    [
      'iat equal to exp (within the allowed skew)',
      { claims: (c, { nowSeconds, skewSeconds }) => ({ ...c, iat: nowSeconds + skewSeconds - 1, exp: nowSeconds + skewSeconds - 1 }) },
    ],
    ['a lifetime longer than configured', { claims: (c, { ttlSeconds }) => ({ ...c, exp: c.iat + ttlSeconds + 1 }) }],
    ['a payload starting with a UTF-8 BOM', { payloadText: (json) => `\uFEFF${json}` }],
    ['a header starting with a UTF-8 BOM', { headerText: (json) => `\uFEFF${json}` }],
    ['base64 padding on the signature', { token: (t) => t.replace(/[^.]+$/, (sig) => (sig.length % 4 === 0 ? `${sig}=` : padded(sig))) }],
    // A 256-byte signature is 342 characters, the last carrying four spare bits.
    ['the signature spelled another way (a spare bit of its last character set)', { token: (t) => t.replace(/[^.]+$/, respelled) }],
    [
      'the payload spelled another way (signed as spelled)',
      // Lengthen the JSON until its encoding's last character has spare bits.
      { payloadText: (json) => (Buffer.byteLength(json) % 3 === 0 ? `${json} ` : json), payloadSegment: respelled },
    ],
    [
      'base64 padding on the payload (signed as padded)',
      // JSON allows trailing whitespace: lengthen the text until its encoding needs padding.
      { payloadText: (json) => (Buffer.byteLength(json) % 3 === 0 ? `${json} ` : json), payloadSegment: padded },
    ],
  ];

import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomUUID } from 'node:crypto';
import { randomBytesPooled, randomToken } from './random.js';

/**
 * Refresh-token format and the pure cryptography around it.
 *
 *   lk_rt_<user id>.<session id>.<secret>.<tag>
 *
 * - The `lk_rt_` prefix lets secret scanners recognise a leaked token.
 * - User and session ids locate the session (all of a user's keys share one Redis hash tag) and are not
 *   secret: `sid` is also in every access token.
 * - `secret` is 256 random bits (RFC 9700 §4.14: refresh tokens must be unguessable). The store keeps only
 *   SHA-256(secret): a dump of the store yields no usable token.
 * - `tag` = first 128 bits of SHA-1(macKey ‖ SHA-256(secret)), where `macKey` is a random per-session key
 *   held by the store. It proves the token was minted for this session, so a token forged from a known
 *   session id is refused without revoking anything, while a genuine spent token (tag valid, secret not
 *   current) is reuse. Both inputs have fixed lengths, so the keyed hash has no length-extension issue;
 *   it is computed inside the Redis script, where SHA-1 is the hash on offer.
 */

export const REFRESH_TOKEN_PREFIX = 'lk_rt_';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const TOKEN_RE = new RegExp(`^lk_rt_(${UUID})\\.([A-Za-z0-9_-]{22})\\.([A-Za-z0-9_-]{43})\\.([0-9a-f]{32})$`);

export interface RefreshTokenParts {
  userId: string;
  sessionId: string;
  secret: string;
  tag: string;
}

export const newUserId = (): string => randomUUID();
export const newSessionId = (): string => randomToken(16);
export const newSecret = (): string => randomToken(32);
export const newMacKey = (): Buffer => randomBytesPooled(16);

export const hashSecret = (secret: string): Buffer => createHash('sha256').update(secret).digest();

export const sessionTag = (macKey: Buffer, secretHash: Buffer): string =>
  createHash('sha1').update(macKey).update(secretHash).digest('hex').slice(0, 32);

export const formatRefreshToken = (p: RefreshTokenParts): string =>
  `${REFRESH_TOKEN_PREFIX}${p.userId}.${p.sessionId}.${p.secret}.${p.tag}`;

/** Strict parse; anything malformed is simply not a token (the caller answers invalid_grant). */
export function parseRefreshToken(token: string): RefreshTokenParts | null {
  if (token.length > 200) return null;
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const [, userId, sessionId, secret, tag] = m as unknown as [string, string, string, string, string];
  return { userId, sessionId, secret, tag };
}

/**
 * Grace window (PRODUCT.md): re-presenting the just-spent token must return the same successor. The store
 * keeps the successor's secret sealed with AES-256-GCM under HKDF(spent secret): only someone holding the
 * spent token can open it, so the store's copy is useless on its own, and it expires with the window.
 */
function graceKey(spentSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', spentSecret, Buffer.alloc(0), 'latchkey refresh grace v1', 32));
}

export function sealSuccessor(spentSecret: string, successorSecret: string): string {
  const iv = randomBytesPooled(12);
  const cipher = createCipheriv('aes-256-gcm', graceKey(spentSecret), iv);
  const body = Buffer.concat([cipher.update(successorSecret, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** Returns the successor secret, or null if `sealed` was not sealed under this spent secret. */
export function openSuccessor(spentSecret: string, sealed: string): string | null {
  try {
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 12 + 16 + 1) return null;
    const decipher = createDecipheriv('aes-256-gcm', graceKey(spentSecret), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
}

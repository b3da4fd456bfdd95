import { createHash, createHmac } from 'node:crypto';
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
 *   SHA-256(secret), truncated to 128 bits: a dump of the store yields no usable token.
 * - `tag` = first 128 bits of SHA-1(macKey ‖ SHA-256(secret)[:16]) (src/store/session-tag.ts), where `macKey`
 *   is a random per-session key held by the store. It proves the token was minted for this session, so a token forged from a known
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

export const newSessionId = (): string => randomToken(16);
export const newSecret = (): string => randomToken(32);
export const newMacKey = (): Buffer => randomBytesPooled(16);

export const hashSecret = (secret: string): Buffer => createHash('sha256').update(secret).digest();

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
 * Grace window (README "Security model"): re-presenting the just-spent token must return the same successor. A
 * successor's secret is HMAC-SHA256(spent secret, nonce) with a fresh random nonce; the store keeps the
 * nonce for the window only. The nonce alone yields nothing (the spent secret is never stored), so the
 * store's copy is useless on its own, yet every holder of the spent token derives the same successor.
 * The successor is as unpredictable as the spent secret (256 bits) to anyone without the nonce, and to
 * anyone without the spent token whatever else they know.
 */
export const newSuccessorNonce = (): string => randomToken(16);

export function successorSecret(spentSecret: string, nonce: string): string {
  return createHmac('sha256', spentSecret).update('latchkey successor v1\0').update(nonce).digest('base64url');
}

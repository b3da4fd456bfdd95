import { createHash } from 'node:crypto';

/**
 * The tag that proves a refresh token was minted for its session: the first 128 bits of
 * SHA-1(macKey ‖ SHA-256(secret)[:16]). The Redis scripts compute the same in Lua (redis.sha1hex), the
 * in-process store with this function. Both inputs have fixed lengths, so the keyed hash has no
 * length-extension issue.
 */
export const sessionTag = (macKey: Buffer, secretHash: Buffer): string =>
  createHash('sha1').update(macKey).update(secretHash.subarray(0, 16)).digest('hex').slice(0, 32);

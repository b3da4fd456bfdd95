import { randomFillSync } from 'node:crypto';

/**
 * Random bytes from a pool refilled 4 KiB at a time. Each randomBytes() call costs a trip into OpenSSL's
 * generator and a fresh allocation (about 6 µs here); a refresh needs three values, so drawing them from
 * one CSPRNG fill is measurably cheaper. Node's own randomUUID() pools the same way. Bytes handed out are
 * copied out of the pool and never handed out twice.
 */
const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let offset = POOL_SIZE;

/** `n` (at most 4096) cryptographically random bytes. */
export function randomBytesPooled(n: number): Buffer {
  if (offset + n > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.from(pool.subarray(offset, offset + n));
  offset += n;
  return out;
}

/** `n` random bytes as base64url (e.g. 16 bytes → 22 characters). */
export function randomToken(n: number): string {
  if (offset + n > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = pool.toString('base64url', offset, offset + n);
  offset += n;
  return out;
}

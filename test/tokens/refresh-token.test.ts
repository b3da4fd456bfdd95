import { describe, expect, it } from 'vitest';
import { randomBytesPooled, randomToken } from '../../src/tokens/random.js';
import { newSecret, newSuccessorNonce, parseRefreshToken, formatRefreshToken, newSessionId, successorSecret } from '../../src/tokens/refresh-token.js';
import { newUserId } from '../../src/accounts/accounts.js';

describe('random values', () => {
  it('never hand out the same bytes twice, across pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(randomToken(32)); // 32 000 bytes: several refills
    for (let i = 0; i < 1000; i++) seen.add(randomBytesPooled(16).toString('hex'));
    expect(seen.size).toBe(2000);
    expect(randomToken(16)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(randomToken(32)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('refuse a draw larger than the pool instead of returning fewer bytes', () => {
    expect(() => randomBytesPooled(4097)).toThrow(RangeError);
    expect(() => randomToken(0)).toThrow(RangeError);
    expect(randomBytesPooled(4096)).toHaveLength(4096);
  });

  it('return copies: changing one value does not change the next', () => {
    const a = randomBytesPooled(16);
    const copy = Buffer.from(a);
    a.fill(0);
    expect(randomBytesPooled(16).equals(copy)).toBe(false);
    expect(copy.equals(Buffer.alloc(16))).toBe(false);
  });
});

describe('grace-window successor', () => {
  it('is the same for every holder of the spent token and the stored nonce, and for no one else', () => {
    const spent = newSecret();
    const nonce = newSuccessorNonce();
    const successor = successorSecret(spent, nonce);
    expect(successorSecret(spent, nonce)).toBe(successor);
    expect(successorSecret(newSecret(), nonce)).not.toBe(successor);
    expect(successorSecret(spent, newSuccessorNonce())).not.toBe(successor);
    // A well-formed secret: the successor goes out in a refresh token that must parse.
    const token = formatRefreshToken({ userId: newUserId(), sessionId: newSessionId(), secret: successor, tag: '0'.repeat(32) });
    expect(parseRefreshToken(token)?.secret).toBe(successor);
  });
});

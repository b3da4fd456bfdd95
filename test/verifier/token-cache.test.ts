import { describe, expect, it } from 'vitest';
import { TokenCache } from '@latchkey/verifier';

describe('TokenCache: the bounded memory of decided tokens', () => {
  const now = 1_000_000;

  it('never holds more than its capacity, whatever flood of distinct keys arrives', () => {
    const c = new TokenCache<number>(100);
    for (let i = 0; i < 10_000; i++) c.set(`t${i}`, i, now + 60_000, now);
    expect(c.size).toBe(100);
    expect(c.get('t9999', now)).toBe(9999);
    expect(c.get('t0', now)).toBeUndefined();
  });

  it('never returns an entry at or past its until, and an expired entry goes first when full', () => {
    const c = new TokenCache<string>(2);
    c.set('long', 'b', now + 60_000, now);
    c.set('short', 'a', now + 1000, now);
    expect(c.get('long', now)).toBe('b');
    expect(c.get('short', now + 999)).toBe('a');
    expect(c.get('short', now + 1000)).toBeUndefined();
    c.set('short', 'a', now + 1000, now);
    c.get('short', now);
    // Full, both used: the expired one is dropped, not the live one that is older.
    c.set('next', 'd', now + 60_000, now + 2000);
    expect(c.get('long', now + 2000)).toBe('b');
    expect(c.get('next', now + 2000)).toBe('d');
    expect(c.size).toBe(2);
  });

  it('a token in use survives a flood of tokens seen once (second chance)', () => {
    const c = new TokenCache<string>(50);
    c.set('hot', 'h', now + 60_000, now);
    for (let i = 0; i < 5_000; i++) {
      expect(c.get('hot', now)).toBe('h');
      c.set(`once-${i}`, 'x', now + 60_000, now);
    }
    expect(c.size).toBe(50);
  });
});

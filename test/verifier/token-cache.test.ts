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

  it('deleted, replaced and expired entries do not disturb the age order', () => {
    const c = new TokenCache<string>(3);
    c.set('a', 'a', now + 60_000, now);
    c.set('b', 'b', now + 60_000, now);
    c.set('c', 'c', now + 60_000, now);
    c.delete('b');
    c.set('d', 'd', now + 60_000, now); // room left by b: nothing evicted
    expect([c.get('a', now), c.get('c', now), c.get('d', now)]).toEqual(['a', 'c', 'd']);
    c.set('a', 'A', now + 60_000, now); // replaced: young again, and not used since
    c.set('e', 'e', now + 60_000, now); // c and d were used: second chances; then a (replaced, unused) goes
    expect(c.get('a', now)).toBeUndefined();
    expect([c.get('c', now), c.get('d', now), c.get('e', now)]).toEqual(['c', 'd', 'e']);
    expect(c.size).toBe(3);
  });

  /** The order the cache documents, kept the plain way: a Map's insertion order, oldest first. */
  class ReferenceCache {
    readonly entries = new Map<string, { value: number; until: number; used: boolean }>();
    constructor(readonly capacity: number) {}
    get(key: string, at: number): number | undefined {
      const e = this.entries.get(key);
      if (e === undefined) return undefined;
      if (e.until <= at) {
        this.entries.delete(key);
        return undefined;
      }
      e.used = true;
      return e.value;
    }
    set(key: string, value: number, until: number, at: number): void {
      if (this.entries.has(key)) this.entries.delete(key);
      else if (this.entries.size >= this.capacity) {
        for (const [k, e] of this.entries) {
          this.entries.delete(k);
          if (!e.used || e.until <= at) break;
          e.used = false;
          this.entries.set(k, e);
        }
      }
      this.entries.set(key, { value, until, used: false });
    }
  }

  it('answers as a plain second-chance list would, through any mix of hits, sets, deletions and expiry', () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return (seed >>> 16) % n;
    };
    for (const capacity of [1, 2, 5, 64]) {
      const c = new TokenCache<number>(capacity);
      const ref = new ReferenceCache(capacity);
      let at = now;
      const differences: string[] = [];
      for (let step = 0; step < 20_000 && differences.length < 5; step++) {
        const key = `k${random(capacity * 3)}`;
        const op = random(10);
        if (op < 4) {
          const [got, expected] = [c.get(key, at), ref.get(key, at)];
          if (got !== expected) differences.push(`step ${step}: get ${key} gave ${got}, not ${expected}`);
        } else if (op < 8) {
          const until = at + 1 + random(2000);
          c.set(key, step, until, at);
          ref.set(key, step, until, at);
        } else if (op < 9) {
          c.delete(key);
          ref.entries.delete(key);
        } else at += random(100);
        if (c.size !== ref.entries.size) differences.push(`step ${step}: size ${c.size}, not ${ref.entries.size}`);
      }
      expect(differences).toEqual([]);
      for (const key of ref.entries.keys()) expect(c.get(key, at)).toBe(ref.get(key, at));
      // The age order is kept beside the Map, with deleted entries skipped lazily: it stays bounded too.
      expect((c as unknown as { queue: unknown[] }).queue.length).toBeLessThanOrEqual(4 * capacity + 2048);
    }
  });
});

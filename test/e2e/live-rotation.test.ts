import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore } from '../../src/keys/keystore.js';
import { generateFirstKey, rotate } from '../../src/keys/rotation.js';
import { buildTestApp, silentLogger, type TestApp, listenLocal } from '../helpers/app.js';
import { PASSWORD, uniqueEmail } from '../helpers/client.js';

/**
 * Two staged rotations under continuous traffic, verified by a stock jose remote key set with its default
 * caching (10-minute cache, 30-second cooldown between fetches). The activation delay is shortened from
 * the default 11 minutes to 33 seconds: still longer than jose's cooldown, which is what a verifier whose
 * cached set lacks the new kid waits out before it may fetch again.
 */
describe('staged rotation under load, seen by a resource server', () => {
  let t: TestApp;
  let base: string;
  let dir: string;
  const DELAY_MS = 33_000;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lk-live-keys-'));
    await generateFirstKey(dir, [], Date.now() - 1000, 2048);
    t = await buildTestApp(
      'memory',
      { LATCHKEY_KEYS_DIR: dir, LATCHKEY_KEYS_RESCAN: '1', LATCHKEY_JWKS_MAX_AGE: '1', LATCHKEY_ACCESS_TOKEN_TTL: '120' },
      { clock: Date.now },
    );
    base = await listenLocal(t.app);
  });
  afterAll(async () => t.close());

  it('zero failed verifications, and no token carries a kid before the JWKS published it', { timeout: 150_000 }, async () => {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return (await res.json()) as Record<string, string>;
    };
    const email = uniqueEmail('live');
    await post('/register', { email, password: PASSWORD });
    let refresh = (await post('/login', { email, password: PASSWORD })).refresh_token!;

    // The resource server's view: a stock verifier, and an observer of when each kid first appeared.
    const jwks = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`));
    const firstSeen = new Map<string, number>();
    let observing = true;
    const observer = (async () => {
      while (observing) {
        const body = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
        const at = Date.now();
        for (const k of body.keys) if (!firstSeen.has(k.kid)) firstSeen.set(k.kid, at);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    while (firstSeen.size === 0) await new Promise((r) => setTimeout(r, 10));
    const started = Date.now();
    const rotations: Array<{ at: number; kid: string }> = [];
    const stage = async () => {
      const keys = new KeyStore(dir, silentLogger());
      await keys.load();
      const r = await rotate(dir, keys.all(), Date.now(), { activationDelayMs: DELAY_MS, retentionMs: 180_000, bits: 2048, immediate: false });
      rotations.push({ at: Date.parse(r.created.activatesAt), kid: r.created.kid });
    };

    let verified = 0;
    const failures: string[] = [];
    const early: string[] = [];
    const kidsUsed = new Set<string>();
    while (true) {
      const elapsed = Date.now() - started;
      if (rotations.length === 0 && elapsed > 1000) await stage();
      if (rotations.length === 1 && Date.now() > rotations[0]!.at + 1000) await stage();
      if (rotations.length === 2 && Date.now() > rotations[1]!.at + 2000) break;
      if (elapsed > 120_000) throw new Error('rotations did not complete in time');

      const requestedAt = Date.now();
      const answer = await post('/refresh', { refresh_token: refresh });
      refresh = answer.refresh_token!;
      const kid = decodeProtectedHeader(answer.access_token!).kid!;
      kidsUsed.add(kid);
      const seen = firstSeen.get(kid);
      if (seen === undefined || seen > requestedAt) early.push(kid);
      try {
        await jwtVerify(answer.access_token!, jwks, { issuer: t.config.issuer, audience: t.config.audience, algorithms: ['RS256'] });
        verified++;
      } catch (err) {
        failures.push(`${kid}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    observing = false;
    await observer;

    expect(failures).toEqual([]);
    expect(early).toEqual([]);
    expect(kidsUsed.size).toBe(3);
    expect([...kidsUsed]).toEqual(expect.arrayContaining(rotations.map((r) => r.kid)));
    expect(verified).toBeGreaterThan(100);
  });
});

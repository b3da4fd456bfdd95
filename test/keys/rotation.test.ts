import { mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KeyStore } from '../../src/keys/keystore.js';
import { generateFirstKey, prune, revoke, rotate, RotationError } from '../../src/keys/rotation.js';
import { silentLogger } from '../helpers/app.js';

const MIN = 60_000;
const times = { activationDelayMs: 11 * MIN, retentionMs: 16 * MIN };

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'lk-rot-'));
  const keys = new KeyStore(dir, silentLogger());
  const t0 = Date.now();
  await generateFirstKey(dir, [], t0, 2048);
  await keys.load();
  return { dir, keys, t0, first: keys.signer(t0)!.kid };
}

const kidsIn = (keys: KeyStore, now: number) => (JSON.parse(keys.jwks(now).body) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);

describe('staged rotation', () => {
  it('publishes the new key at once, signs with it only after the delay, keeps the old one published until its tokens expire', async () => {
    const { dir, keys, t0, first } = await setup();
    const etagBefore = keys.jwks(t0).etag;
    const r = await rotate(dir, keys.all(), t0, { ...times, bits: 2048, immediate: false });
    await keys.load();
    const next = r.created.kid;

    expect(kidsIn(keys, t0)).toEqual(expect.arrayContaining([first, next]));
    expect(keys.jwks(t0).etag).not.toBe(etagBefore);
    expect(keys.jwks(t0 + 1).etag).toBe(keys.jwks(t0).etag);
    expect(keys.signer(t0)?.kid).toBe(first);
    expect(keys.signer(t0 + times.activationDelayMs - 1)?.kid).toBe(first);
    expect(keys.signer(t0 + times.activationDelayMs)?.kid).toBe(next);
    // The old key verifies its tokens until it leaves the JWKS, and not after.
    const leaves = t0 + times.activationDelayMs + times.retentionMs;
    expect(keys.verificationKey(first, leaves - 1)).not.toBeNull();
    expect(kidsIn(keys, leaves - 1)).toContain(first);
    expect(keys.verificationKey(first, leaves)).toBeNull();
    expect(kidsIn(keys, leaves)).toEqual([next]);

    for (const file of await readdir(dir)) expect((await stat(join(dir, file))).mode & 0o777).toBe(0o600);
    expect(await prune(keys.all(), leaves)).toEqual([first]);
    await keys.load();
    expect(keys.all().map((k) => k.kid)).toEqual([next]);
  });

  it('refuses a second staged rotation while one is pending, and a second first key', async () => {
    const { dir, keys, t0 } = await setup();
    await expect(generateFirstKey(dir, keys.all(), t0, 2048)).rejects.toBeInstanceOf(RotationError);
    await rotate(dir, keys.all(), t0, { ...times, bits: 2048, immediate: false });
    await keys.load();
    await expect(rotate(dir, keys.all(), t0 + 1000, { ...times, bits: 2048, immediate: false })).rejects.toThrow(/already scheduled/);
  });

  it('rotate --now signs at once; a pending key that never signed leaves at once', async () => {
    const { dir, keys, t0, first } = await setup();
    const staged = await rotate(dir, keys.all(), t0, { ...times, bits: 2048, immediate: false });
    await keys.load();
    const now = t0 + 1000;
    const r = await rotate(dir, keys.all(), now, { ...times, bits: 2048, immediate: true });
    await keys.load();
    expect(keys.signer(now)?.kid).toBe(r.created.kid);
    expect(kidsIn(keys, now)).toEqual(expect.arrayContaining([first, r.created.kid]));
    expect(kidsIn(keys, now)).not.toContain(staged.created.kid);
    expect(keys.signer(now + times.activationDelayMs)?.kid).toBe(r.created.kid);
  });

  it('revoke removes a key from the JWKS at once, but never the only signing key', async () => {
    const { dir, keys, t0, first } = await setup();
    await expect(revoke(dir, keys.all(), t0, first, first)).rejects.toThrow(/only signing key/);
    await expect(revoke(dir, keys.all(), t0, 'f'.repeat(32), first)).rejects.toThrow(/no key/);
    const r = await rotate(dir, keys.all(), t0, { ...times, bits: 2048, immediate: true });
    await keys.load();
    await revoke(dir, keys.all(), t0 + 1, first, r.created.kid);
    await keys.load();
    expect(kidsIn(keys, t0 + 1)).toEqual([r.created.kid]);
    expect(keys.verificationKey(first, t0 + 1)).toBeNull();
    expect(keys.describe(t0 + 1)).toMatch(new RegExp(`${first}\\s+revoked\\s+no\\s+no`));
  });
});

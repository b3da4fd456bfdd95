import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore } from '../../src/keys/keystore.js';
import { generateFirstKey, revoke, rotate } from '../../src/keys/rotation.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { buildTestApp, silentLogger, type TestApp } from '../helpers/app.js';
import { TestClock } from '../helpers/clock.js';
import { bearer, loginNative, register } from '../helpers/client.js';

async function eventually(check: () => Promise<boolean>, what: string, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/** Two instances sharing one key folder and one store, as a deployment behind a load balancer. */
describe('two instances sharing a key folder', () => {
  const clock = new TestClock();
  const store = new MemoryStore();
  let dir: string;
  let a: TestApp;
  let b: TestApp;
  let first: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lk-shared-keys-'));
    await generateFirstKey(dir, [], clock.now() - 1000, 2048);
    const env = { LATCHKEY_KEYS_DIR: dir, LATCHKEY_KEYS_RESCAN: '1' };
    a = await buildTestApp('memory', env, { clock: clock.now, store });
    b = await buildTestApp('memory', env, { clock: clock.now, store });
    first = a.app.latchkey.keys.signer(clock.now())!.kid;
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await store.close();
  });

  const jwksKids = async (t: TestApp) =>
    ((await t.app.inject('/.well-known/jwks.json')).json() as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
  const kidOf = async (t: TestApp, email: string) => decodeProtectedHeader((await loginNative(t.app, email)).access).kid;
  const files = () => {
    const keys = new KeyStore(dir, silentLogger());
    return keys.load().then(() => keys.all());
  };

  it('pick up a staged rotation without a restart and switch signing keys at the same moment', async () => {
    const user = await register(a.app);
    const oldToken = (await loginNative(a.app, user.email)).access;
    const r = await rotate(dir, await files(), clock.now(), { activationDelayMs: 60_000, retentionMs: 120_000, bits: 2048, immediate: false });
    const next = r.created.kid;
    await eventually(async () => (await jwksKids(a)).includes(next) && (await jwksKids(b)).includes(next), 'both instances publish the new key');

    clock.advance(Date.parse(r.created.activatesAt) - clock.now() - 1);
    expect([await kidOf(a, user.email), await kidOf(b, user.email)]).toEqual([first, first]);
    clock.advance(1);
    expect([await kidOf(a, user.email), await kidOf(b, user.email)]).toEqual([next, next]);

    // Tokens signed by the retired key still work everywhere until it leaves the JWKS.
    for (const t of [a, b]) expect((await t.app.inject({ url: '/sessions', headers: bearer(oldToken) })).statusCode).toBe(200);
  });

  it('a corrupted key file is reported and ignored: the last good version keeps signing and stays published', async () => {
    const user = await register(a.app);
    const signing = a.app.latchkey.keys.signer(clock.now())!.kid;
    const before = await jwksKids(a);
    const path = join(dir, `${signing}.json`);
    const good = await readFile(path);
    await writeFile(path, '{"kid": "truncat', { mode: 0o600 });
    await writeFile(join(dir, 'stray.json'), 'not json at all', { mode: 0o600 });
    await new Promise((r) => setTimeout(r, 1500)); // more than one re-scan
    for (const t of [a, b]) {
      expect(await jwksKids(t)).toEqual(before);
      expect(await kidOf(t, user.email)).toBe(signing);
    }
    await writeFile(path, good, { mode: 0o600 });
    await rm(join(dir, 'stray.json'));
  });

  it('a revoked key leaves the JWKS and its tokens stop verifying on every instance within seconds', async () => {
    const user = await register(a.app);
    const current = a.app.latchkey.keys.signer(clock.now())!.kid;
    const tokenOnFirst = (await loginNative(a.app, user.email)).access;
    expect(decodeProtectedHeader(tokenOnFirst).kid).toBe(current);
    // Emergency: sign with a new key now, then revoke the current one.
    const r = await rotate(dir, await files(), clock.now(), { activationDelayMs: 60_000, retentionMs: 120_000, bits: 2048, immediate: true });
    await revoke(dir, await files(), clock.now(), current, r.created.kid);
    await eventually(async () => !(await jwksKids(a)).includes(current) && !(await jwksKids(b)).includes(current), 'the key leaves both JWKS');
    for (const t of [a, b]) {
      const res = await t.app.inject({ url: '/sessions', headers: bearer(tokenOnFirst) });
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('invalid_token');
      expect(await kidOf(t, user.email)).toBe(r.created.kid);
    }
  });
});

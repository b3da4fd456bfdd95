import { createLocalJWKSet, decodeJwt, type JSONWebKeySet } from 'jose';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier, VerifyError, type Verifier } from '@latchkey/verifier';
import { NO_CONTEXT } from '../src/audit/context.js';
import { runIncident } from '../src/incident-cli.js';
import { RedisStore } from '../src/store/redis-store.js';
import { buildTestApp, createTestStore, silentLogger, type TestApp, type TestStore } from './helpers/app.js';
import { bearer, loginNative, PASSWORD, refreshNative, uniqueEmail } from './helpers/client.js';
import { testRedisUrl } from './support/redis.js';
import { within } from './helpers/within.js';

const codeOf = (v: Verifier, token: string) =>
  v.verify(token).then(
    () => 'accepted',
    (err: unknown) => (err instanceof VerifyError ? err.code : `unexpected: ${String(err)}`),
  );

const verifyStatus = async (t: TestApp, token: string) => (await t.app.inject({ url: '/verify', headers: bearer(token) })).statusCode;
const sessionsStatus = async (t: TestApp, token: string) => (await t.app.inject({ url: '/sessions', headers: bearer(token) })).statusCode;

async function newUser(t: TestApp, roles: string[] = []) {
  return t.app.latchkey.accounts.register(uniqueEmail('incident'), PASSWORD, NO_CONTEXT, roles);
}

/** Runs the CLI as an operator would, against the test's Redis and key prefix. */
async function cli(args: string[], prefix: string) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runIncident(args, {
    env: { NODE_ENV: 'test', REDIS_URL: testRedisUrl(), REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent' },
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    interactive: false,
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('the incident switch: two latchkey instances on one Redis and a verifier', () => {
  let shared: TestStore;
  let storeB: RedisStore;
  let a: TestApp;
  let b: TestApp;
  let prefix: string;
  let verifierRedis: Redis[];
  let verifiers: Verifier[];

  const verifier = async () => {
    const client = new Redis(testRedisUrl(), { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    verifierRedis.push(client);
    const jwks = createLocalJWKSet((await a.app.inject('/.well-known/jwks.json')).json() as JSONWebKeySet);
    const v = createVerifier({ issuer: a.config.issuer, audience: a.config.audience, getKey: jwks, redis: client, keyPrefix: prefix });
    verifiers.push(v);
    await v.ready();
    return v;
  };

  beforeAll(async () => {
    verifierRedis = [];
    verifiers = [];
    shared = await createTestStore('redis', 'incident');
    prefix = (shared.store as RedisStore).keyPrefix;
    storeB = new RedisStore({ url: testRedisUrl(), keyPrefix: prefix, commandTimeoutMs: 2000, logger: silentLogger() });
    await storeB.connect();
    a = await buildTestApp('redis', {}, { store: shared.store, clock: Date.now });
    b = await buildTestApp('redis', {}, { store: storeB, clock: Date.now });
  });
  afterAll(async () => {
    for (const v of verifiers) await v.close();
    for (const c of verifierRedis) c.disconnect();
    await a.close();
    await b.close();
    await storeB.close();
    await shared.dispose();
  });

  it('revoke-all: every earlier session is refused everywhere, a login right after stays valid', async () => {
    const alice = await newUser(a);
    const bob = await newUser(a, ['admin']);
    const a1 = await loginNative(a.app, alice.email);
    const a2 = await loginNative(b.app, alice.email);
    const b1 = await loginNative(b.app, bob.email);
    const v = await verifier();
    for (const x of [a1, a2, b1]) expect(await codeOf(v, x.access)).toBe('accepted');

    expect((await cli(['revoke-all'], prefix)).code).toBe(2); // no --yes, not on a terminal
    expect(await verifyStatus(a, a1.access)).toBe(200);
    const run = await cli(['revoke-all', '--yes'], prefix);
    expect(run).toMatchObject({ code: 0 });
    expect(run.out).toMatch(/^revoked: EVERY session of EVERY user created before \d{4}-/);

    // At once on both instances on every Bearer endpoint; on /verify, which remembers decided tokens (a1
    // was answered from memory on A), within about a second, through the revocation stream.
    for (const t of [a, b]) {
      for (const x of [a1, a2, b1]) {
        expect(await sessionsStatus(t, x.access)).toBe(401);
        expect(await within(1500, async () => (await verifyStatus(t, x.access)) === 401)).toBeLessThan(1500);
      }
    }
    // Refresh refused for those sessions, on either instance.
    expect((await refreshNative(b.app, a1.refresh)).statusCode).toBe(401);
    expect((await refreshNative(a.app, a2.refresh)).statusCode).toBe(401);
    expect((await refreshNative(a.app, b1.refresh)).statusCode).toBe(401);
    // The verifier within about a second.
    for (const x of [a1, a2, b1]) expect(await within(1500, async () => (await codeOf(v, x.access)) === 'revoked')).toBeLessThan(1500);

    // A login right after — very likely within the same second as the switch — stays valid everywhere.
    const fresh = await loginNative(a.app, alice.email);
    const mark = (await a.store.globalRevocation()).all;
    expect(decodeJwt(fresh.access).iat! * 1000).toBeGreaterThanOrEqual(mark);
    for (const t of [a, b]) expect(await verifyStatus(t, fresh.access)).toBe(200);
    expect(await codeOf(v, fresh.access)).toBe('accepted');
    const rotated = await refreshNative(b.app, fresh.refresh);
    expect(rotated.statusCode).toBe(200);
    expect(await verifyStatus(a, rotated.json().access_token as string)).toBe(200);

    // A verifier started after the switch knows it from the start, without the stream's fact.
    const late = await verifier();
    expect(await codeOf(late, a2.access)).toBe('revoked');
    expect(await codeOf(late, fresh.access)).toBe('accepted');
  });

  it('revoke-all --role admin reaches only the users holding that role', async () => {
    const carol = await newUser(a);
    const dave = await newUser(a, ['admin']);
    const c1 = await loginNative(a.app, carol.email);
    const d1 = await loginNative(b.app, dave.email);
    const v = await verifier();
    for (const x of [c1, d1]) expect(await codeOf(v, x.access)).toBe('accepted');
    // The previous test's mark may still be in this very second; the role mark must be a later one.
    await new Promise((r) => setTimeout(r, 1000));
    const c0 = await loginNative(a.app, carol.email);
    const d0 = await loginNative(b.app, dave.email);

    expect((await cli(['revoke-all', '--role', 'admin', '--yes'], prefix)).code).toBe(0);
    expect(await verifyStatus(b, d0.access)).toBe(401);
    expect((await refreshNative(a.app, d0.refresh)).statusCode).toBe(401);
    expect(await verifyStatus(a, c0.access)).toBe(200);
    expect((await refreshNative(b.app, c0.refresh)).statusCode).toBe(200);
    await within(1500, async () => (await codeOf(v, d1.access)) === 'revoked');
    expect(await codeOf(v, c1.access)).toBe('accepted');
    const again = await loginNative(a.app, dave.email);
    expect(await verifyStatus(b, again.access)).toBe(200);
    expect(await within(1500, async () => (await codeOf(v, again.access)) === 'accepted')).toBeLessThan(1500);
  });

  it('the CLI refuses without Redis and with a bad role', async () => {
    const out: string[] = [];
    const io = { env: { NODE_ENV: 'test' }, out: (l: string) => out.push(l), err: (l: string) => out.push(l), interactive: false };
    expect(await runIncident(['revoke-all', '--yes'], io)).toBe(2);
    expect(out.join('\n')).toMatch(/no Redis configured/);
    expect(await runIncident(['revoke-all', '--role', 'a b', '--yes'], io)).toBe(2);
    expect(await runIncident(['nuke'], io)).toBe(2);
  });
});

describe('the incident switch on the embedded store', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp('memory');
  });
  afterAll(async () => t.close());

  it('the service method revokes every earlier session and keeps later logins', async () => {
    const user = await newUser(t);
    const before = await loginNative(t.app, user.email);
    const mark = await t.app.latchkey.revocations.revokeEveryone(null, NO_CONTEXT);
    expect(mark % 1000).toBe(0);
    expect(t.events).toContainEqual({ type: 'everyone_revoked', revokedAfter: mark, role: null });
    expect(await verifyStatus(t, before.access)).toBe(401);
    expect((await refreshNative(t.app, before.refresh)).statusCode).toBe(401);
    const after = await loginNative(t.app, user.email);
    expect(await verifyStatus(t, after.access)).toBe(200);
    expect((await refreshNative(t.app, after.refresh)).statusCode).toBe(200);
  });
});

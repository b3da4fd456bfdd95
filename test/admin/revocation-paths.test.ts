import type { FastifyInstance } from 'fastify';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisStore } from '../../src/store/redis-store.js';
import { createVerifier, VerifyError, type Verifier } from '@latchkey/verifier';
import { buildTestAdmin, buildTestApp, createTestStore, testKeysDir, type TestApp, type TestStore } from '../helpers/app.js';
import { bearer, loginNative, PASSWORD, post, register } from '../helpers/client.js';
import { resetTokenOf, startSmtpServer, waitFor } from '../helpers/smtp.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { runCli } from '../helpers/cli.js';

const NEW_PASSWORD = 'a brand new passphrase';

/**
 * README "Security model": every revocation, by whatever path, reaches /verify at once and verifiers within about a
 * second. One private Redis; latchkey, its admin API, a verifier and the CLI all on it.
 */
describe('every revocation path reaches /verify at once and latchkey/verifier within a second', () => {
  let redis: RedisServerHandle;
  let test: TestStore;
  let t: TestApp;
  let admin: FastifyInstance;
  let verifier: Verifier;
  let client: Redis;
  let adminToken: string;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;

  beforeAll(async () => {
    redis = await startRedisServer();
    smtp = await startSmtpServer();
    test = await createTestStore('redis', 'paths', redis.url);
    t = await buildTestApp('redis', { LATCHKEY_SMTP_URL: smtp.url }, { store: test.store, clock: Date.now });
    admin = await buildTestAdmin(t);
    const jwks = createLocalJWKSet((await t.app.inject('/.well-known/jwks.json')).json() as JSONWebKeySet);
    client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    verifier = createVerifier({
      issuer: t.config.issuer,
      audience: t.config.audience,
      getKey: jwks,
      redis: client,
      keyPrefix: (test.store as RedisStore).keyPrefix,
    });
    await verifier.ready();
    const a = await register(t.app);
    await t.store.setRoles(a.id, ['admin']);
    adminToken = (await loginNative(t.app, a.email)).access;
  });
  afterAll(async () => {
    await verifier.close();
    client.disconnect();
    await admin.close();
    await t.close();
    await test.dispose();
    await redis.stop();
    await smtp.close();
  });

  const as = (method: 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown) =>
    admin.inject({
      method,
      url,
      headers: { ...bearer(adminToken), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      payload: body === undefined ? undefined : JSON.stringify(body),
    });

  const code = (token: string) =>
    verifier.verify(token).then(
      () => 'accepted',
      (err: unknown) => (err instanceof VerifyError ? err.code : String(err)),
    );

  /** Logs in, lets the verifier cache an accepted decision, revokes by `path`, and checks both checkers. */
  async function revokedBy(path: (user: { id: string; email: string }, login: { access: string; sessionId: string }) => Promise<void>) {
    const user = await register(t.app);
    const login = await loginNative(t.app, user.email);
    expect(await code(login.access)).toBe('accepted');
    await path(user, login);
    expect((await t.app.inject({ url: '/verify', headers: bearer(login.access) })).statusCode).toBe(401);
    const started = Date.now();
    for (;;) {
      if ((await code(login.access)) === 'revoked') break;
      if (Date.now() - started > 1000) throw new Error('the verifier still accepts the token after 1 s');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('admin API: disable', async () => {
    await revokedBy(async (u) => expect((await as('POST', `/admin/users/${u.id}/disable`)).statusCode).toBe(200));
  });

  it('admin API: revoke every session', async () => {
    await revokedBy(async (u) => expect((await as('DELETE', `/admin/users/${u.id}/sessions`)).statusCode).toBe(204));
  });

  it('admin API: revoke one session', async () => {
    await revokedBy(async (u, s) => expect((await as('DELETE', `/admin/users/${u.id}/sessions/${s.sessionId}`)).statusCode).toBe(204));
  });

  it('admin API: roles with revoke', async () => {
    await revokedBy(async (u) => expect((await as('PUT', `/admin/users/${u.id}/roles`, { roles: ['x'], revoke: true })).statusCode).toBe(200));
  });

  it('admin API: one access token', async () => {
    await revokedBy(async (_u, s) => expect((await as('POST', '/admin/tokens/revoke', { token: s.access })).statusCode).toBe(204));
  });

  it('password change by its owner (from another session)', async () => {
    await revokedBy(async (u) => {
      const other = await loginNative(t.app, u.email);
      const res = await post(t.app, '/password', { current_password: PASSWORD, new_password: NEW_PASSWORD }, bearer(other.access));
      expect(res.statusCode).toBe(200);
    });
  });

  it('password reset', async () => {
    await revokedBy(async (u) => {
      const before = smtp.mails.length;
      await post(t.app, '/password/forgot', { email: u.email });
      const mail = await waitFor('the reset mail', () => smtp.mails.slice(before).find((m) => m.to.includes(u.email)));
      expect((await post(t.app, '/password/reset', { token: resetTokenOf(mail), new_password: NEW_PASSWORD })).statusCode).toBe(204);
    });
  });

  it('CLI: users disable', async () => {
    const env = {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: (test.store as RedisStore).keyPrefix,
      LATCHKEY_ISSUER: t.config.issuer,
      LATCHKEY_KEYS_DIR: await testKeysDir(),
    };
    await revokedBy(async (u) => {
      const run = await runCli(['users', 'disable', u.email], env);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
    });
  }, 120_000);
});
